"""How many conversations are active: counted in the background every few seconds, so /health only reads a number.

The operator polls /health every few seconds and Prometheus scrapes /metrics; a count per request would put a
query of the database on both paths, and a slow database would then slow the health poll that decides restarts.
So one task counts at an interval and both read the last count. A count that fails (the database is down, or
slower than the timeout) keeps the last one: the database check in /health already says what is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from .services.protocols import ConversationStore

log = logging.getLogger(__name__)


class ConversationCount:
    """The last count of unexpired conversations (`value`), refreshed every `interval` seconds once started."""

    def __init__(
        self,
        *,
        store: ConversationStore,
        ttl_seconds: float,
        interval: float,
        timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.value = 0
        self.failing = False
        """Whether the last count failed (logged once per run of failures, not once per interval)."""
        self._store, self._ttl, self._interval, self._timeout, self._clock = (
            store,
            ttl_seconds,
            interval,
            timeout,
            clock,
        )
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        """Count now; on failure keep the last value."""
        try:
            async with asyncio.timeout(self._timeout):
                self.value = await self._store.count_conversations(fresh_after=self._clock() - self._ttl)
        except Exception as exc:
            if not self.failing:
                log.warning(
                    "counting conversations failed, /health keeps the last count: %s: %s", type(exc).__name__, exc
                )
            self.failing = True
            return
        if self.failing:
            log.info("counting conversations works again")
        self.failing = False

    def start(self) -> None:
        """Count at once, then every interval, on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="agentry-conversation-count")

    async def stop(self) -> None:
        """Stop counting; safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._interval)
