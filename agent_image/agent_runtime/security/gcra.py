"""The generic cell rate algorithm (GCRA): a token bucket kept as one number per principal.

A limit of N per period lets a principal spend N at once (the burst) and then N per period
steadily. The state is the "theoretical arrival time" (TAT): when the bucket would be full again.
A TAT at or before now means the bucket is full, which is the same as having no state at all; that
is what lets both implementations forget idle principals (evict, or let the Redis key expire).
These functions are pure, so the in-process and the Redis limiter (whose Lua script mirrors them)
are tested against the same arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Relative slack for float rounding: a burst of exactly `limit` must pass however the interval rounds.
EPSILON = 1e-9


@dataclass(frozen=True)
class Rate:
    """`limit` units per `period` seconds."""

    limit: int
    period: float = 60.0

    def __post_init__(self) -> None:
        if self.limit < 1 or self.period <= 0:
            raise ValueError(f"a rate needs a positive limit and period, not {self.limit}/{self.period}s")

    @property
    def interval(self) -> float:
        """Seconds one unit takes to refill."""
        return self.period / self.limit


@dataclass(frozen=True)
class Outcome:
    """The verdict and the state to store."""

    allowed: bool
    tat: float
    retry_after: float


def take(*, rate: Rate, tat: float | None, now: float, cost: int = 1) -> Outcome:
    """Spend `cost` units when the bucket holds them; otherwise refuse and say when to retry."""
    start = now if tat is None else max(tat, now)
    new_tat = start + cost * rate.interval
    excess = new_tat - now - rate.period
    if excess > rate.period * EPSILON:
        return Outcome(allowed=False, tat=start, retry_after=excess)
    return Outcome(allowed=True, tat=new_tat, retry_after=0.0)


def peek(*, rate: Rate, tat: float | None, now: float) -> Outcome:
    """Whether one unit is left, without spending it (tokens are charged after the run)."""
    outcome = take(rate=rate, tat=tat, now=now, cost=1)
    return Outcome(allowed=outcome.allowed, tat=now if tat is None else max(tat, now), retry_after=outcome.retry_after)


def charge(*, rate: Rate, tat: float | None, now: float, cost: int) -> float:
    """The TAT after spending `cost` units unconditionally; it may run past the burst (a debt)."""
    start = now if tat is None else max(tat, now)
    return start + max(cost, 0) * rate.interval
