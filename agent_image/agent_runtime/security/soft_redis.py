"""Calls to a shared Redis that fail soft: a bounded wait, then the caller's per-process answer.

The rate limiter and the budget ledger both keep their state in Redis so that every replica shares it. When
Redis is unreachable they answer from this process instead (limits and budgets then hold per pod), report
`healthy` False for /health and metrics, and try Redis again after `retry_interval`. Failing closed would turn
a cache outage into a full outage of the agent; failing fully open would drop every limit exactly when
something is wrong.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Longest a Redis round trip may hold up a request before the caller falls back.
DEFAULT_TIMEOUT = 0.5
#: Time after a failure before Redis is tried again (so an outage does not cost every request a timeout).
DEFAULT_RETRY_INTERVAL = 5.0


class SoftRedis:
    """Runs calls against Redis with a timeout; after a failure, none until `retry_interval` has passed."""

    def __init__(
        self,
        *,
        what: str,
        fallback: str,
        clock: Callable[[], float],
        timeout: float = DEFAULT_TIMEOUT,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
    ) -> None:
        self._what = what
        self._fallback = fallback
        self._clock = clock
        self.timeout = timeout
        self._retry_interval = retry_interval
        self._down_until: float | None = None
        self.last_error = ""
        """Why Redis was last unusable (type and message; never credentials)."""
        self.recovered: Callable[[], Awaitable[None]] | None = None
        """Called (and awaited) once Redis answers again after being down, before the call's result is used."""

    @property
    def healthy(self) -> bool:
        """False while Redis is considered down and the per-process fallback answers."""
        return self._down_until is None

    async def call(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """The call's result, or None when Redis is (or just went) down; never raises."""
        if self._down_until is not None:
            if self._clock() < self._down_until:
                return None
            self._down_until = self._clock() + self._retry_interval  # one probe at a time; others fall back
        try:
            result = await asyncio.wait_for(call(), timeout=self.timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            self.mark_down(exc)
            return None
        if self._down_until is not None:
            log.warning("%s: Redis is reachable again; %s", self._what, "shared across replicas again")
            self._down_until = None
            if self.recovered is not None:
                await self.recovered()
        return result

    def mark_down(self, exc: BaseException) -> None:
        """Consider Redis down for `retry_interval` because of `exc`."""
        if self._down_until is None:
            log.warning(
                "%s: Redis unreachable (%s); %s until it is back", self._what, type(exc).__name__, self._fallback
            )
        detail = f"no answer within {self.timeout}s" if isinstance(exc, TimeoutError) else str(exc)
        self.last_error = f"{type(exc).__name__}: {detail}"
        self._down_until = self._clock() + self._retry_interval
