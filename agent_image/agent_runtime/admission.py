"""Backpressure: a concurrency limit, a bounded queue in front of it, and draining on shutdown.

A request either gets a slot, waits in the queue, or is refused at once with a Retry-After; nothing
waits without bound, so a saturated pod answers quickly and the operator sees it as saturated.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .errors import ApiError


def retry_after_seconds(*, queued: int, max_concurrent: int, typical_latency_ms: float) -> float:
    """A guess of when a slot frees: the queue ahead drained at `max_concurrent` per typical run.

    At least one second, so clients do not hammer a saturated pod.
    """
    waves = (queued + 1) / max_concurrent
    return max(1.0, waves * typical_latency_ms / 1000)


class Admission:
    """Counts running and queued requests; `slot()` admits, queues or refuses one request."""

    def __init__(self, *, max_concurrent: int, max_queued: int) -> None:
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self.in_flight = 0
        self.queued = 0
        self.draining = False
        self.open_streams = 0
        """Streamed runs open now (envelope.StreamRun counts them); /health and /metrics read it."""
        self.typical_latency_ms = 1000.0
        self._semaphore = asyncio.Semaphore(max_concurrent)

    def check_open(self) -> None:
        """Refuse with 503 when draining; a request already admitted is still served."""
        if self.draining:
            raise ApiError(503, "draining", "the runtime is shutting down; retry on another replica", retry_after=1)

    def check_capacity(self) -> None:
        """Refuse with 429 when every slot is busy and the queue is full."""
        self.check_open()
        if self._semaphore.locked() and self.queued >= self.max_queued:
            retry = retry_after_seconds(
                queued=self.queued, max_concurrent=self.max_concurrent, typical_latency_ms=self.typical_latency_ms
            )
            message = (
                f"overloaded: {self.in_flight} requests running and {self.queued} queued "
                f"(limits {self.max_concurrent} and {self.max_queued})"
            )
            raise ApiError(429, "overloaded", message, retry_after=retry)

    def observe_latency(self, latency_ms: float) -> None:
        """Fold one run's latency into the typical latency behind Retry-After (a moving average, O(1))."""
        self.typical_latency_ms = 0.9 * self.typical_latency_ms + 0.1 * latency_ms

    @asynccontextmanager
    async def slot(self, *, bypass_queue_limit: bool = False) -> AsyncIterator[None]:
        """Hold one execution slot for the block, queueing for it if needed.

        `bypass_queue_limit` is for the items of a batch that was admitted as a whole: they wait for a
        slot like everyone else, but are never refused half-way through the batch.
        """
        if not bypass_queue_limit:
            self.check_capacity()
        self.queued += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.queued -= 1
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._semaphore.release()
