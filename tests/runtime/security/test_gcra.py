from __future__ import annotations

import pytest

from agent_runtime.security.gcra import Rate, charge, peek, take


def spend(rate: Rate, times: int, *, now: float = 0.0) -> tuple[list[bool], float | None]:
    tat: float | None = None
    verdicts = []
    for _ in range(times):
        outcome = take(rate=rate, tat=tat, now=now)
        verdicts.append(outcome.allowed)
        tat = outcome.tat
    return verdicts, tat


@pytest.mark.parametrize("limit", [1, 2, 7, 100])
def test_burst_of_exactly_limit_then_refusal(limit: int) -> None:
    verdicts, _ = spend(Rate(limit=limit), limit + 1)
    assert verdicts == [True] * limit + [False]


def test_refusal_says_when_one_unit_is_back() -> None:
    rate = Rate(limit=4, period=60)
    _, tat = spend(rate, 4)
    refused = take(rate=rate, tat=tat, now=0.0)
    assert not refused.allowed and refused.retry_after == pytest.approx(15.0)
    assert refused.tat == tat
    assert take(rate=rate, tat=tat, now=15.0).allowed


def test_peek_does_not_spend() -> None:
    rate = Rate(limit=1)
    assert peek(rate=rate, tat=None, now=0).allowed
    assert peek(rate=rate, tat=None, now=0).tat == 0


def test_charge_can_overdraw_and_the_debt_refills() -> None:
    rate = Rate(limit=100, period=60)
    tat = charge(rate=rate, tat=None, now=0, cost=300)
    assert tat == pytest.approx(180.0)
    blocked = peek(rate=rate, tat=tat, now=0)
    assert not blocked.allowed and blocked.retry_after == pytest.approx(120.6)
    assert peek(rate=rate, tat=tat, now=120.6).allowed


@pytest.mark.parametrize(("limit", "period"), [(0, 60.0), (1, 0.0), (-1, 1.0)])
def test_rate_must_be_positive(limit: int, period: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        Rate(limit=limit, period=period)
