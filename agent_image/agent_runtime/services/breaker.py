"""A circuit breaker: stop calling a dependency that keeps failing, then let one trial call through.

Pure state over an injected clock, so tests step time instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

BreakerState = Literal["closed", "open", "half-open"]

#: Numeric value of each state for the Prometheus gauge (0 is the healthy one).
STATE_VALUES: dict[BreakerState, int] = {"closed": 0, "half-open": 1, "open": 2}


class CircuitOpenError(Exception):
    """Raised instead of calling a dependency whose circuit is open."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"{name}: circuit open, retry in {retry_after:.1f}s")
        self.retry_after = retry_after


class CircuitBreaker:
    """Closed: calls pass and failures are counted; `failure_threshold` in a row open the circuit.

    Open: calls are refused until `reset_timeout` has passed, then the circuit is half-open and exactly
    one trial call passes: its success closes the circuit, its failure opens it again for another period.
    """

    def __init__(
        self,
        *,
        name: str,
        failure_threshold: int,
        reset_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> BreakerState:
        """The state now; an open circuit whose timeout passed reads as half-open."""
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.reset_timeout:
            return "half-open"
        return "open"

    @property
    def failures(self) -> int:
        """Consecutive failures counted so far."""
        return self._failures

    def before_call(self) -> None:
        """Let a call through or raise CircuitOpenError; in half-open only one trial is let through."""
        state = self.state
        if state == "closed":
            return
        if state == "half-open" and not self._trial_in_flight:
            self._trial_in_flight = True
            return
        raise CircuitOpenError(self.name, self.retry_after())

    def retry_after(self) -> float:
        """Seconds until a trial call will be let through (0 when closed)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.reset_timeout - (self._clock() - self._opened_at))

    def record_success(self) -> None:
        """A call succeeded: the circuit closes and the count restarts."""
        self._failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        """A call failed: open after the threshold, or at once when the half-open trial failed."""
        self._failures += 1
        if self._trial_in_flight or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
        self._trial_in_flight = False
