"""A liveness heartbeat: a task that ticks on the event loop, so a blocked loop shows as a stale tick."""

from __future__ import annotations

import asyncio
import contextlib
import time


class Heartbeat:
    """Ticks every `interval` seconds; `lag()` is how late the last tick is beyond its schedule."""

    def __init__(self, *, interval: float) -> None:
        self.interval = interval
        self._last = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start ticking on the running loop."""
        self._last = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._tick(), name="agentry-heartbeat")

    async def stop(self) -> None:
        """Stop ticking; safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def lag(self) -> float:
        """Seconds the loop is behind: 0 while ticks arrive on time."""
        return max(0.0, time.monotonic() - self._last - self.interval)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self._last = time.monotonic()
