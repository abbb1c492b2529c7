"""Budgets over the per-process ledger: periods, refusals, crossings, the agent's spend; pure and in memory."""

from __future__ import annotations

import calendar
from decimal import Decimal

import pytest

from agent_runtime.pricing import PriceTable
from agent_runtime.security.budgets import (
    Budgets,
    InProcessLedger,
    Limit,
    Policy,
    Spent,
    build_budgets,
    nanos,
    period_at,
    principal_hasher,
)
from agentry_api.v1alpha1 import BudgetPeriod, BudgetsSpec, PricingSpec
from tests.support.clock import FakeClock

PRICES = PriceTable.from_spec(PricingSpec(input_per_million_tokens=2.5, output_per_million_tokens=10))
#: 2026-12-02 23:59:30 UTC
NEAR_MIDNIGHT = float(calendar.timegm((2026, 12, 2, 23, 59, 30)))


def budgets(spec: dict[str, object] | None, *, clock: FakeClock, prices: PriceTable | None = PRICES) -> Budgets:
    parsed = None if spec is None else BudgetsSpec.model_validate(spec)
    return build_budgets(parsed, prices=prices, redis=None, prefix="agentry:t:a:budget", key=b"k" * 32, clock=clock)


def test_a_day_ends_at_midnight_utc_and_a_month_on_the_first() -> None:
    day = period_at(BudgetPeriod.DAILY, NEAR_MIDNIGHT)
    assert (day.name, day.resets_iso()) == ("2026-12-02", "2026-12-03T00:00:00Z")
    month = period_at(BudgetPeriod.MONTHLY, NEAR_MIDNIGHT)
    assert (month.name, month.resets_iso()) == ("2026-12", "2027-01-01T00:00:00Z")
    assert period_at(BudgetPeriod.MONTHLY, calendar.timegm((2028, 2, 29, 12, 0, 0))).resets_iso() == (
        "2028-03-01T00:00:00Z"
    )
    assert period_at(BudgetPeriod.DAILY, day.resets_at).name == "2026-12-03"


def test_cost_is_counted_in_billionths_rounded_half_even() -> None:
    assert nanos(Decimal("0.0000000015")) == 2
    assert nanos(Decimal("0.0000000025")) == 2
    assert nanos(Decimal("1.5")) == 1_500_000_000


def test_policy_amounts_and_messages() -> None:
    spec = BudgetsSpec.model_validate({"perPrincipal": {"tokens": 1000}, "perAgent": {"cost": 5.25}})
    policy = Policy.from_spec(spec, PRICES)
    assert policy.limits == (Limit("principal", "tokens", 1000), Limit("agent", "cost", 5_250_000_000))
    assert policy.limits[0].describe(policy.period, "USD") == "perPrincipal daily tokens budget of 1000 tokens"
    assert policy.limits[1].describe(policy.period, "USD") == "perAgent daily cost budget of 5.25 USD"
    assert policy.refusal(agent=Spent(0, 5_249_999_999), principal=Spent(999)) is None
    assert policy.refusal(agent=Spent(0, 5_250_000_000), principal=Spent(0)) == policy.limits[1]
    assert policy.refusal(agent=Spent(0, 9), principal=Spent(1000)) == policy.limits[0]


def test_crossings_fire_once_at_the_warning_and_once_at_the_end() -> None:
    policy = Policy.from_spec(BudgetsSpec.model_validate({"perAgent": {"tokens": 100}, "warnAtPercent": 80}), None)
    assert policy.crossings("agent", before=Spent(70), after=Spent(79)) == []
    [warn] = policy.crossings("agent", before=Spent(79), after=Spent(80))
    assert warn.level == "warn"
    assert policy.crossings("agent", before=Spent(80), after=Spent(99)) == []
    [end] = policy.crossings("agent", before=Spent(70), after=Spent(130))
    assert end.level == "exhausted"
    assert policy.crossings("principal", before=Spent(0), after=Spent(200)) == []
    assert policy.percent(Spent(130)) == 130.0


async def test_a_run_is_refused_once_the_caller_spent_its_budget_and_others_go_on() -> None:
    clock = FakeClock(NEAR_MIDNIGHT - 3600)
    b = budgets({"perPrincipal": {"tokens": 100}}, clock=clock)
    assert (await b.check("alice")).allowed
    await b.charge("alice", tokens=60, cost=Decimal(0))
    assert (await b.check("alice")).allowed
    await b.charge("alice", tokens=60, cost=Decimal(0))  # the run that was let in finishes: 120 of 100
    refused = await b.check("alice")
    assert not refused.allowed and refused.limit == Limit("principal", "tokens", 100)
    assert refused.period is not None and refused.period.resets_iso() == "2026-12-03T00:00:00Z"
    assert refused.retry_after == 3630
    assert (await b.check("bob")).allowed


async def test_the_agent_budget_counts_every_caller_and_the_next_day_starts_afresh() -> None:
    clock = FakeClock(NEAR_MIDNIGHT)
    b = budgets({"perAgent": {"cost": 0.001}}, clock=clock)
    # 100 input + 100 output tokens: 0.00025 + 0.001 = 0.00125 USD
    crossed = await b.charge("alice", tokens=200, cost=PRICES.cost(input_tokens=100, output_tokens=100))  # type: ignore[union-attr]
    assert [c.level for c in crossed] == ["exhausted"]
    decision = await b.check("bob")
    assert not decision.allowed and decision.retry_after == 30
    report = await b.report()
    assert (report.tokens, report.cost, report.currency, report.budget_percent) == (200, 0.00125, "USD", 125.0)
    assert not report.shared
    clock.advance(31)
    assert (await b.check("bob")).allowed
    report = await b.report()
    assert (report.period, report.tokens, report.cost) == ("2026-12-03", 0, 0.0)


async def test_without_budgets_the_ledger_keeps_the_agent_spend_only() -> None:
    clock = FakeClock(NEAR_MIDNIGHT)
    b = budgets(None, clock=clock, prices=None)
    assert b.principal_key("alice") is None
    await b.charge("alice", tokens=42, cost=Decimal(0))
    assert (await b.check("alice")).allowed
    report = await b.report()
    assert (report.tokens, report.cost, report.currency, report.budget_percent) == (42, None, None, None)
    assert b.spent_now() == Spent(42)
    clock.advance(60)
    assert b.spent_now() == Spent()


def test_principal_keys_are_keyed_hashes_never_the_subject() -> None:
    keyed, plain = principal_hasher(b"k" * 32), principal_hasher(None)
    assert keyed("alice") != plain("alice")
    assert "alice" not in keyed("alice") and len(keyed("alice")) == 32
    assert keyed("alice") == principal_hasher(b"k" * 32)("alice")


async def test_the_in_process_ledger_forgets_the_least_recent_principal_beyond_its_bound() -> None:
    ledger = InProcessLedger(max_subjects=2)
    period = period_at(BudgetPeriod.DAILY, NEAR_MIDNIGHT)
    for name in ("a", "b", "c"):
        await ledger.charge(period, name, Spent(10))
    agent, forgotten = await ledger.spent(period, "a")
    assert agent == Spent(30) and forgotten == Spent()
    assert (await ledger.spent(period, "c"))[1] == Spent(10)


@pytest.mark.parametrize("percent", [1, 50, 100])
def test_warn_at_percent_is_the_spec_s(percent: int) -> None:
    policy = Policy.from_spec(BudgetsSpec.model_validate({"perAgent": {"tokens": 10}, "warnAtPercent": percent}), None)
    crossings = policy.crossings("agent", before=Spent(0), after=Spent(max(1, percent * 10 // 100)))
    assert [c.level for c in crossings] == (["exhausted"] if percent == 100 else ["warn"])
