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
        assert heartbeat.lag() < 0.15
        time.sleep(0.5)  # a blocking call on the loop, the failure /healthz exists to catch
        assert heartbeat.lag() > 0.3
        await asyncio.sleep(0.1)
        assert heartbeat.lag() < 0.15
    finally:
        await heartbeat.stop()
