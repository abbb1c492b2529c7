"""The one manual clock for tests of anything that takes `clock=` (a callable returning seconds)."""

from __future__ import annotations


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward (tests may also set `now` directly)."""
        self.now += seconds
