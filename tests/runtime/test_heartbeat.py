"""The liveness heartbeat: a blocked event loop shows as lag."""

from __future__ import annotations

import asyncio
import time

from agent_runtime.heartbeat import Heartbeat


async def test_lag_grows_while_the_loop_is_blocked_and_recovers() -> None:
    heartbeat = Heartbeat(interval=0.02)
    heartbeat.start()
    try:
        await asyncio.sleep(0.05)
        assert heartbeat.lag() < 0.05
        time.sleep(0.3)  # a blocking call on the loop, the failure /healthz exists to catch
        assert heartbeat.lag() > 0.2
        await asyncio.sleep(0.05)
        assert heartbeat.lag() < 0.05
    finally:
        await heartbeat.stop()
