"""Per-principal rate limits on requests and model tokens, per minute.

Requests are counted when they arrive (`hit_request`). Tokens are only known once a run is over,
so a request is let in while the principal has token budget left (`check_tokens`) and the run's
usage is charged afterwards (`add_tokens`); a large run can overdraw the budget, and the principal
then waits until the debt has refilled.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from agentry_api.v1alpha1 import RateLimitSpec

from .gcra import Rate, charge, peek, take

if TYPE_CHECKING:
    import redis.asyncio

Kind = Literal["requests_per_minute", "tokens_per_minute"]
REQUESTS: Kind = "requests_per_minute"
TOKENS: Kind = "tokens_per_minute"
#: Principals tracked in one process before the least recently seen are forgotten.
DEFAULT_MAX_SUBJECTS = 100_000


@dataclass(frozen=True)
class RateDecision:
    """Whether to serve the request; when not, how long to wait and which limit was hit."""

    allowed: bool
    retry_after: float
    limit: str


class RateLimiter(Protocol):
    """Per-principal limits; never raises on the request path."""

    @property
    def healthy(self) -> bool:
        """False while a shared backend is unreachable and limits hold only per process."""
        ...

    async def hit_request(self, subject: str) -> RateDecision:
        """Count one request of `subject`, or refuse it without counting."""
        ...

    async def check_tokens(self, subject: str) -> RateDecision:
        """Whether `subject` has token budget left for another run."""
        ...

    async def add_tokens(self, subject: str, tokens: int) -> None:
        """Charge the tokens a finished run used."""
        ...


def rates_for(spec: RateLimitSpec, *, period: float = 60.0) -> dict[Kind, Rate]:
    """The two rates of a spec; `period` is only shortened by tests."""
    return {
        REQUESTS: Rate(limit=spec.requests_per_minute, period=period),
        TOKENS: Rate(limit=spec.tokens_per_minute, period=period),
    }


class InProcessRateLimiter:
    """Limits held in this process's memory (one pod; the default without Redis).

    Memory stays bounded: a principal whose bucket has refilled carries no information and is
    swept, and beyond `max_subjects` the least recently seen principal is forgotten (which can only
    make the limiter more lenient to that principal, never stricter to anyone).
    """

    def __init__(
        self,
        *,
        rates: dict[Kind, Rate],
        clock: Callable[[], float] = time.monotonic,
        max_subjects: int = DEFAULT_MAX_SUBJECTS,
    ) -> None:
        self._rates = rates
        self._clock = clock
        self._max_subjects = max_subjects
        self._tats: OrderedDict[tuple[Kind, str], float] = OrderedDict()
        self._next_sweep = clock()

    @property
    def healthy(self) -> bool:
        """Always true: there is nothing to lose."""
        return True

    def __len__(self) -> int:
        return len(self._tats)

    async def hit_request(self, subject: str) -> RateDecision:
        """Spend one request (no await inside: atomic on the event loop)."""
        return self.hit_now(REQUESTS, subject)

    async def check_tokens(self, subject: str) -> RateDecision:
        """Whether at least one token of budget is left."""
        return self.peek_now(TOKENS, subject)

    async def add_tokens(self, subject: str, tokens: int) -> None:
        """Charge a finished run's tokens."""
        self.charge_now(TOKENS, subject, tokens)

    def hit_now(self, kind: Kind, subject: str) -> RateDecision:
        """Synchronous core of hit_request, shared with the Redis limiter's fallback."""
        now = self._now()
        outcome = take(rate=self._rates[kind], tat=self._tats.get((kind, subject)), now=now)
        if outcome.allowed:
            self._store(kind, subject, outcome.tat)
        return RateDecision(allowed=outcome.allowed, retry_after=outcome.retry_after, limit=kind)

    def peek_now(self, kind: Kind, subject: str) -> RateDecision:
        """Synchronous core of check_tokens."""
        outcome = peek(rate=self._rates[kind], tat=self._tats.get((kind, subject)), now=self._now())
        return RateDecision(allowed=outcome.allowed, retry_after=outcome.retry_after, limit=kind)

    def charge_now(self, kind: Kind, subject: str, cost: int) -> None:
        """Synchronous core of add_tokens."""
        if cost > 0:
            tat = charge(rate=self._rates[kind], tat=self._tats.get((kind, subject)), now=self._now(), cost=cost)
            self._store(kind, subject, tat)

    def _now(self) -> float:
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        return now

    def _store(self, kind: Kind, subject: str, tat: float) -> None:
        self._tats[(kind, subject)] = tat
        self._tats.move_to_end((kind, subject))
        while len(self._tats) > self._max_subjects:
            self._tats.popitem(last=False)

    def _sweep(self, now: float) -> None:
        """Forget refilled buckets; runs at most once per the shortest period."""
        for key in [key for key, tat in self._tats.items() if tat <= now]:
            del self._tats[key]
        self._next_sweep = now + min(rate.period for rate in self._rates.values())


def build_rate_limiter(
    spec: RateLimitSpec,
    *,
    redis: redis.asyncio.Redis | None,
    prefix: str,
    clock: Callable[[], float] = time.monotonic,
    period: float = 60.0,
) -> RateLimiter:
    """Shared limits through Redis when a client is given (the cache's), per process otherwise."""
    local = InProcessRateLimiter(rates=rates_for(spec, period=period), clock=clock)
    if redis is None:
        return local
    from .ratelimit_redis import RedisRateLimiter

    return RedisRateLimiter(
        redis=redis, prefix=prefix, rates=rates_for(spec, period=period), fallback=local, clock=clock
    )
