"""Rate limits shared by every replica of an agent through Redis.

Each (limit, principal) is one Redis key holding the GCRA arrival time in milliseconds, updated by
a Lua script, so a check and its update are atomic across replicas, and the key expires when the
bucket has refilled (idle principals cost nothing). Time comes from the Redis server (`TIME`), so
replicas whose clocks disagree still share one timeline; this needs Redis 5 or newer.

When Redis is unreachable the limiter fails *soft*: it answers from a per-process limiter instead
(limits then hold per pod, as without Redis), sets `healthy` to False for /health and metrics, and
tries Redis again after `retry_interval`. Failing closed would turn a cache outage into a full
outage of the agent; failing fully open would drop every limit exactly when something is wrong.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio
from redis.exceptions import RedisError

from .gcra import Rate
from .ratelimit import REQUESTS, TOKENS, InProcessRateLimiter, Kind, RateDecision

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Mirrors gcra.take / peek / charge in milliseconds. ARGV: mode (hit|peek|charge), interval_ms, period_ms, cost.
#: Returns {allowed (0|1), retry_after_ms}.
GCRA_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local mode, interval, period, cost = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + cost * interval
if mode ~= 'charge' then
  local excess = new_tat - now - period
  if excess > period * 1e-9 then return {0, math.ceil(excess)} end
  if mode == 'peek' then return {1, 0} end
end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return {1, 0}
"""
#: Longest a Redis round trip may hold up a request before the limiter falls back.
DEFAULT_TIMEOUT = 0.5
#: Time after a failure before Redis is tried again (so an outage does not cost every request a timeout).
DEFAULT_RETRY_INTERVAL = 5.0


class RedisRateLimiter:
    """Limits shared through Redis under `prefix` (the agent's, e.g. `agentry:<ns>:<name>:ratelimit:`).

    A per-process limiter is the fallback while Redis is down.
    """

    def __init__(
        self,
        *,
        redis: redis.asyncio.Redis,
        prefix: str,
        rates: dict[Kind, Rate],
        fallback: InProcessRateLimiter,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = DEFAULT_TIMEOUT,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
    ) -> None:
        self._script = redis.register_script(GCRA_SCRIPT)
        self._prefix = prefix
        self._rates = rates
        self._fallback = fallback
        self._clock = clock
        self._timeout = timeout
        self._retry_interval = retry_interval
        self._down_until: float | None = None
        self.last_error = ""
        """Why Redis was last unusable (type and message; never credentials)."""

    @property
    def healthy(self) -> bool:
        """False while Redis is considered down and the per-process fallback answers."""
        return self._down_until is None

    def key(self, kind: Kind, subject: str) -> str:
        """The Redis key of a limit; the subject is hashed, so no identity is stored in Redis."""
        digest = hashlib.sha256(subject.encode()).hexdigest()[:32]
        return f"{self._prefix.rstrip(':')}:{kind}:{digest}"

    async def hit_request(self, subject: str) -> RateDecision:
        """Spend one request in the shared bucket."""
        result = await self._shared(lambda: self._run(REQUESTS, subject, "hit", 1))
        if result is None:
            return self._fallback.hit_now(REQUESTS, subject)
        return _decision(result, REQUESTS)

    async def check_tokens(self, subject: str) -> RateDecision:
        """Whether the shared token bucket has at least one token left."""
        result = await self._shared(lambda: self._run(TOKENS, subject, "peek", 1))
        if result is None:
            return self._fallback.peek_now(TOKENS, subject)
        return _decision(result, TOKENS)

    async def add_tokens(self, subject: str, tokens: int) -> None:
        """Charge a finished run's tokens to the shared bucket (or locally while Redis is down)."""
        if tokens <= 0:
            return
        if await self._shared(lambda: self._run(TOKENS, subject, "charge", tokens)) is None:
            self._fallback.charge_now(TOKENS, subject, tokens)

    async def _run(self, kind: Kind, subject: str, mode: str, cost: int) -> list[int]:
        rate = self._rates[kind]
        args: list[str | float] = [mode, rate.interval * 1000, rate.period * 1000, cost]
        return list(await self._script(keys=[self.key(kind, subject)], args=args))

    async def _shared(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """The call's result, or None when Redis is (or just went) down; never raises."""
        if self._down_until is not None:
            if self._clock() < self._down_until:
                return None
            self._down_until = self._clock() + self._retry_interval  # one probe at a time; others fall back
        try:
            result = await asyncio.wait_for(call(), timeout=self._timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            self._mark_down(exc)
            return None
        if self._down_until is not None:
            log.warning("rate limiter: Redis is reachable again; limits are shared across replicas")
            self._down_until = None
        return result

    def _mark_down(self, exc: BaseException) -> None:
        if self._down_until is None:
            log.warning(
                "rate limiter: Redis unreachable (%s); limits now hold per pod until it is back",
                type(exc).__name__,
            )
        detail = f"no answer within {self._timeout}s" if isinstance(exc, TimeoutError) else str(exc)
        self.last_error = f"{type(exc).__name__}: {detail}"
        self._down_until = self._clock() + self._retry_interval


def _decision(result: list[Any], kind: Kind) -> RateDecision:
    allowed, retry_ms = int(result[0]), int(result[1])
    return RateDecision(allowed=bool(allowed), retry_after=math.ceil(retry_ms) / 1000, limit=kind)
