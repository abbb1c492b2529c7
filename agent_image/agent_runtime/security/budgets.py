"""Token and cost budgets per UTC day or month, per caller and per agent (spec.security.budgets).

A run is let in while every budget that applies to it has something left (`Budgets.check`); what each
model response used is charged as it arrives (`Budgets.charge`), so a run that was let in finishes and
spend stops within one run of a budget, as with the per-minute token limit. The same ledger also keeps the
agent's spend without any budget, so /health (and the AgentDeployment's status) always shows today's.

Cost is counted in integer billionths of the currency, the quantum of the wire (pricing.QUANTUM), so a
ledger in Redis adds integers and replicas never disagree on a rounding.

A ledger is the I/O: in this process (one pod; the default without Redis) or in Redis (budgets_redis.py).
Everything else here is pure and takes the time as an argument.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Literal, Protocol

from agentry_api.health import Spend
from agentry_api.v1alpha1 import BudgetLimits, BudgetPeriod, BudgetsSpec

from ..pricing import QUANTUM, PriceTable

if TYPE_CHECKING:
    import redis.asyncio

Scope = Literal["agent", "principal"]
Kind = Literal["tokens", "cost"]
Level = Literal["warn", "exhausted"]
#: The field names a budget has in the spec, for messages.
SCOPE_FIELDS: dict[Scope, str] = {"agent": "perAgent", "principal": "perPrincipal"}
NANOS = 10**9
#: Principals tracked in one process before the least recently seen are forgotten.
DEFAULT_MAX_SUBJECTS = 100_000


@dataclass(frozen=True)
class Period:
    """One budget period: its name (`2026-12-02`, `2026-12`) and when the next one starts (epoch seconds)."""

    name: str
    resets_at: float

    def resets_iso(self) -> str:
        """The reset as RFC 3339 in UTC."""
        return datetime.fromtimestamp(self.resets_at, UTC).isoformat().replace("+00:00", "Z")


def period_at(kind: BudgetPeriod, now: float) -> Period:
    """The UTC day or month that contains `now`."""
    at = datetime.fromtimestamp(now, UTC)
    if kind == BudgetPeriod.MONTHLY:
        year, month = (at.year + 1, 1) if at.month == 12 else (at.year, at.month + 1)
        return Period(f"{at.year:04d}-{at.month:02d}", calendar.timegm((year, month, 1, 0, 0, 0)))
    midnight = calendar.timegm((at.year, at.month, at.day, 0, 0, 0))
    return Period(at.strftime("%Y-%m-%d"), midnight + 86_400)


@dataclass(frozen=True)
class Spent:
    """What one scope spent in one period: tokens, and cost in billionths of the currency."""

    tokens: int = 0
    nanos: int = 0

    def __add__(self, other: Spent) -> Spent:
        return Spent(self.tokens + other.tokens, self.nanos + other.nanos)

    def __sub__(self, other: Spent) -> Spent:
        return Spent(self.tokens - other.tokens, self.nanos - other.nanos)

    def of(self, kind: Kind) -> int:
        """The amount of one kind."""
        return self.tokens if kind == "tokens" else self.nanos


def nanos(cost: Decimal) -> int:
    """A cost in billionths of the currency (rounded half to even, as the wire rounds)."""
    return int((cost / QUANTUM).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


@dataclass(frozen=True)
class Limit:
    """One budget: a scope, a kind and the amount per period (tokens, or billionths of the currency)."""

    scope: Scope
    kind: Kind
    amount: int

    def describe(self, period: BudgetPeriod, currency: str | None) -> str:
        """`perPrincipal daily cost budget of 5 USD`, for a refusal's message."""
        if self.kind == "tokens":
            size = f"{self.amount} tokens"
        else:
            size = f"{Decimal(self.amount) / NANOS:f}".rstrip("0").rstrip(".") + f" {currency or ''}".rstrip()
        return f"{SCOPE_FIELDS[self.scope]} {period.value} {self.kind} budget of {size}"


@dataclass(frozen=True)
class Crossing:
    """A charge that took a budget past its warning level or to its end (counted once, by the charging replica)."""

    limit: Limit
    level: Level


@dataclass(frozen=True)
class BudgetDecision:
    """Whether a run may start; when not, which budget is spent and when it resets."""

    allowed: bool
    limit: Limit | None = None
    period: Period | None = None
    retry_after: float = 0.0


ALLOWED = BudgetDecision(allowed=True)


@dataclass(frozen=True)
class Policy:
    """The budgets of spec.security.budgets with their amounts in ledger units; pure."""

    period: BudgetPeriod
    limits: tuple[Limit, ...]
    warn_at_percent: int
    currency: str | None

    @classmethod
    def from_spec(cls, spec: BudgetsSpec | None, prices: PriceTable | None) -> Policy:
        """The policy of the spec (no limits without budgets: the ledger then only keeps the agent's spend)."""
        if spec is None:
            return cls(BudgetPeriod.DAILY, (), 80, None if prices is None else prices.currency)
        limits = [*_limits("principal", spec.per_principal), *_limits("agent", spec.per_agent)]
        return cls(spec.period, tuple(limits), spec.warn_at_percent, None if prices is None else prices.currency)

    @property
    def per_principal(self) -> bool:
        """Whether callers have budgets of their own (and so a ledger entry each)."""
        return any(limit.scope == "principal" for limit in self.limits)

    def refusal(self, *, agent: Spent, principal: Spent | None) -> Limit | None:
        """The first budget that is spent (a caller's before the agent's), or None."""
        for limit in self.limits:
            spent = agent if limit.scope == "agent" else principal
            if spent is not None and spent.of(limit.kind) >= limit.amount:
                return limit
        return None

    def crossings(self, scope: Scope, *, before: Spent, after: Spent) -> list[Crossing]:
        """The levels a charge took this scope's budgets past (warnAtPercent, then 100%)."""
        found: list[Crossing] = []
        for limit in self.limits:
            if limit.scope != scope:
                continue
            old, new = before.of(limit.kind), after.of(limit.kind)
            if old < limit.amount <= new:
                found.append(Crossing(limit, "exhausted"))
            elif old * 100 < limit.amount * self.warn_at_percent <= new * 100:
                found.append(Crossing(limit, "warn"))
        return found

    def percent(self, agent: Spent) -> float | None:
        """The highest share of the agent's own budgets spent, in percent; None without one."""
        shares = [100 * agent.of(limit.kind) / limit.amount for limit in self.limits if limit.scope == "agent"]
        return round(max(shares), 2) if shares else None


def _limits(scope: Scope, limits: BudgetLimits | None) -> list[Limit]:
    if limits is None:
        return []
    found = []
    if limits.tokens is not None:
        found.append(Limit(scope, "tokens", limits.tokens))
    if limits.cost is not None:
        found.append(Limit(scope, "cost", nanos(Decimal(str(limits.cost)))))
    return found


class Ledger(Protocol):
    """Where spend is kept; never raises on the request path."""

    @property
    def healthy(self) -> bool:
        """False while a shared ledger is unreachable and spend is kept per process."""
        ...

    @property
    def shared(self) -> bool:
        """Whether every replica charges this same ledger."""
        ...

    async def spent(self, period: Period, principal: str | None) -> tuple[Spent, Spent | None]:
        """The agent's spend in `period`, and the principal's (by key) when one is given."""
        ...

    async def charge(self, period: Period, principal: str | None, amount: Spent) -> tuple[Spent, Spent | None]:
        """Add `amount` to the agent's spend and the principal's; the totals after the charge."""
        ...


class InProcessLedger:
    """Spend held in this process's memory, for the current period only, bounded in principals.

    Forgetting a principal (beyond `max_subjects`, least recently seen first) can only make it more lenient
    to that one principal; the agent's own total is never forgotten within its period.
    """

    def __init__(self, *, max_subjects: int = DEFAULT_MAX_SUBJECTS) -> None:
        self._period = ""
        self._agent = Spent()
        self._principals: OrderedDict[str, Spent] = OrderedDict()
        self._max_subjects = max_subjects

    @property
    def healthy(self) -> bool:
        """Always true: there is nothing to reach."""
        return True

    @property
    def shared(self) -> bool:
        """No: each pod keeps its own."""
        return False

    async def spent(self, period: Period, principal: str | None) -> tuple[Spent, Spent | None]:
        """The spend of the agent and of the principal in `period` (no await inside: atomic on the loop)."""
        return self.spent_now(period, principal)

    async def charge(self, period: Period, principal: str | None, amount: Spent) -> tuple[Spent, Spent | None]:
        """Add to the spend (no await inside)."""
        return self.charge_now(period, principal, amount)

    def spent_now(self, period: Period, principal: str | None) -> tuple[Spent, Spent | None]:
        """Synchronous core of `spent`, shared with the Redis ledger's fallback."""
        self._enter(period)
        return self._agent, None if principal is None else self._principals.get(principal, Spent())

    def charge_now(self, period: Period, principal: str | None, amount: Spent) -> tuple[Spent, Spent | None]:
        """Synchronous core of `charge`."""
        self._enter(period)
        self._agent += amount
        if principal is None:
            return self._agent, None
        total = self._principals.pop(principal, Spent()) + amount
        self._principals[principal] = total
        while len(self._principals) > self._max_subjects:
            self._principals.popitem(last=False)
        return self._agent, total

    def _enter(self, period: Period) -> None:
        """A new period starts from nothing."""
        if period.name != self._period:
            self._period, self._agent = period.name, Spent()
            self._principals.clear()


class Budgets:
    """The budgets of one agent over its ledger: check before a run, charge per model response, report spend."""

    def __init__(
        self,
        *,
        policy: Policy,
        ledger: Ledger,
        key: Callable[[str], str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.ledger = ledger
        self._key = key
        self.clock = clock
        """Wall-clock time (the periods are calendar days); tests move it."""
        self.last_agent = Spent()
        """The agent's spend as last seen, for the metrics (read at scrape time)."""
        self._last_period = ""

    def period(self) -> Period:
        """The current period."""
        return period_at(self.policy.period, self.clock())

    def principal_key(self, subject: str) -> str | None:
        """The ledger's key of a caller (a keyed hash, never the subject); None when callers have no budget."""
        return self._key(subject) if self.policy.per_principal else None

    async def check(self, subject: str) -> BudgetDecision:
        """Whether `subject` may start a run: every budget that applies has something left."""
        if not self.policy.limits:
            return ALLOWED
        period = self.period()
        agent, principal = await self.ledger.spent(period, self.principal_key(subject))
        self._seen(period, agent)
        limit = self.policy.refusal(agent=agent, principal=principal)
        if limit is None:
            return ALLOWED
        return BudgetDecision(
            allowed=False, limit=limit, period=period, retry_after=max(1.0, math.ceil(period.resets_at - self.clock()))
        )

    async def charge(self, subject: str, *, tokens: int, cost: Decimal) -> list[Crossing]:
        """Charge one model response; the budgets it took past their warning level or to their end."""
        amount = Spent(tokens, nanos(cost))
        if amount == Spent():
            return []
        period = self.period()
        key = self.principal_key(subject)
        agent, principal = await self.ledger.charge(period, key, amount)
        self._seen(period, agent)
        crossings = self.policy.crossings("agent", before=agent - amount, after=agent)
        if principal is not None:
            crossings += self.policy.crossings("principal", before=principal - amount, after=principal)
        return crossings

    async def report(self) -> Spend:
        """The agent's spend this period, for /health."""
        period = self.period()
        agent, _ = await self.ledger.spent(period, None)
        self._seen(period, agent)
        currency = self.policy.currency
        return Spend(
            period=period.name,
            resets_at=period.resets_iso(),
            tokens=agent.tokens,
            cost=None if currency is None else agent.nanos / NANOS,
            currency=currency,
            shared=self.ledger.shared,
            budget_percent=self.policy.percent(agent),
        )

    def _seen(self, period: Period, agent: Spent) -> None:
        """Remember the agent's spend; within a period it only grows (answers may arrive out of order)."""
        last = self.last_agent
        if period.name != self._last_period or (agent.tokens, agent.nanos) >= (last.tokens, last.nanos):
            self.last_agent, self._last_period = agent, period.name

    def spent_now(self) -> Spent:
        """The agent's spend as last seen, zero once its period is over (for the metrics)."""
        return self.last_agent if self._last_period == self.period().name else Spent()


def principal_hasher(key: bytes | None) -> Callable[[str], str]:
    """A caller's ledger key: HMAC-SHA256 with the PII key when the agent has one, SHA-256 otherwise."""
    if key is not None:
        return lambda subject: hmac.new(key, subject.encode(), hashlib.sha256).hexdigest()[:32]
    return lambda subject: hashlib.sha256(subject.encode()).hexdigest()[:32]


def build_budgets(
    spec: BudgetsSpec | None,
    *,
    prices: PriceTable | None,
    redis: redis.asyncio.Redis | None,
    prefix: str,
    key: bytes | None,
    clock: Callable[[], float] = time.time,
) -> Budgets:
    """Budgets over a Redis ledger when a client is given (the cache's), a per-process one otherwise."""
    policy = Policy.from_spec(spec, prices)
    ledger: Ledger = InProcessLedger()
    if redis is not None:
        from .budgets_redis import RedisLedger

        ledger = RedisLedger(redis=redis, prefix=prefix, clock=time.monotonic)
    return Budgets(policy=policy, ledger=ledger, key=principal_hasher(key), clock=clock)
