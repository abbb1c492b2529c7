"""The circuit breaker's states, stepped with a fake clock."""

from __future__ import annotations

import pytest

from agent_runtime.services.breaker import BreakerState, CircuitBreaker, CircuitOpenError
from tests.support.clock import FakeClock


def state_of(b: CircuitBreaker) -> BreakerState:
    """The state, read through a call so that mypy does not narrow it between steps."""
    return b.state


def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(name="api", failure_threshold=3, reset_timeout=30, clock=clock)


def test_opens_after_threshold_consecutive_failures() -> None:
    b = breaker(FakeClock(100.0))
    for _ in range(2):
        b.before_call()
        b.record_failure()
    assert state_of(b) == "closed"
    b.record_failure()
    assert state_of(b) == "open"
    with pytest.raises(CircuitOpenError, match="circuit open"):
        b.before_call()


def test_a_success_resets_the_count() -> None:
    b = breaker(FakeClock(100.0))
    b.record_failure()
    b.record_failure()
    b.record_success()
    b.record_failure()
    assert state_of(b) == "closed"
    assert b.failures == 1


def opened(clock: FakeClock) -> CircuitBreaker:
    """A breaker that three failures in a row have just opened."""
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()
    return b


def test_half_open_lets_one_trial_through_and_closes_on_success() -> None:
    clock = FakeClock(100.0)
    b = opened(clock)
    clock.now += 30
    assert state_of(b) == "half-open"
    b.before_call()
    with pytest.raises(CircuitOpenError):
        b.before_call()  # a second caller while the trial is in flight
    b.record_success()
    assert state_of(b) == "closed"


def test_a_failed_trial_opens_again_for_a_full_period() -> None:
    clock = FakeClock(100.0)
    b = opened(clock)
    clock.now += 31
    b.before_call()
    b.record_failure()
    assert state_of(b) == "open"
    assert b.retry_after() == pytest.approx(30)
