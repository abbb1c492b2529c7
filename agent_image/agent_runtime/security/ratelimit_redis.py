"""Rate limits shared by every replica of an agent through Redis.

Each (limit, principal) is one Redis key holding the GCRA arrival time in milliseconds, updated by
a Lua script, so a check and its update are atomic across replicas, and the key expires when the
bucket has refilled (idle principals cost nothing). Time comes from the Redis server (`TIME`), so
replicas whose clocks disagree still share one timeline; this needs Redis 5 or newer.

When Redis is unreachable the limiter fails soft (soft_redis.py): it answers from a per-process limiter
(limits then hold per pod, as without Redis) and reports `healthy` False for /health and metrics.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio

from .gcra import Rate
from .ratelimit import REQUESTS, TOKENS, InProcessRateLimiter, Kind, RateDecision
from .soft_redis import DEFAULT_RETRY_INTERVAL, DEFAULT_TIMEOUT, SoftRedis

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
        self._redis = SoftRedis(
            what="rate limiter",
            fallback="limits now hold per pod",
            clock=clock,
            timeout=timeout,
            retry_interval=retry_interval,
        )

    @property
    def healthy(self) -> bool:
        """False while Redis is considered down and the per-process fallback answers."""
        return self._redis.healthy

    @property
    def last_error(self) -> str:
        """Why Redis was last unusable (type and message; never credentials)."""
        return self._redis.last_error

    def key(self, kind: Kind, subject: str) -> str:
        """The Redis key of a limit; the subject is hashed, so no identity is stored in Redis."""
        digest = hashlib.sha256(subject.encode()).hexdigest()[:32]
        return f"{self._prefix.rstrip(':')}:{kind}:{digest}"

    async def hit_request(self, subject: str) -> RateDecision:
        """Spend one request in the shared bucket."""
        result = await self._redis.call(lambda: self._run(REQUESTS, subject, "hit", 1))
        if result is None:
            return self._fallback.hit_now(REQUESTS, subject)
        return _decision(result, REQUESTS)

    async def check_tokens(self, subject: str) -> RateDecision:
        """Whether the shared token bucket has at least one token left."""
        result = await self._redis.call(lambda: self._run(TOKENS, subject, "peek", 1))
        if result is None:
            return self._fallback.peek_now(TOKENS, subject)
        return _decision(result, TOKENS)

    async def add_tokens(self, subject: str, tokens: int) -> None:
        """Charge a finished run's tokens to the shared bucket (or locally while Redis is down)."""
        if tokens <= 0:
            return
        if await self._redis.call(lambda: self._run(TOKENS, subject, "charge", tokens)) is None:
            self._fallback.charge_now(TOKENS, subject, tokens)

    async def _run(self, kind: Kind, subject: str, mode: str, cost: int) -> list[int]:
        rate = self._rates[kind]
        args: list[str | float] = [mode, rate.interval * 1000, rate.period * 1000, cost]
        return list(await self._script(keys=[self.key(kind, subject)], args=args))


def _decision(result: list[Any], kind: Kind) -> RateDecision:
    allowed, retry_ms = int(result[0]), int(result[1])
    return RateDecision(allowed=bool(allowed), retry_after=math.ceil(retry_ms) / 1000, limit=kind)
