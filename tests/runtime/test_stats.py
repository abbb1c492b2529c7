"""Recent-request statistics: bounded memory, windowed rates, nearest-rank percentiles."""

from __future__ import annotations

import pytest

from agent_runtime.stats import RecentRequests, percentile
from tests.support.clock import FakeClock


@pytest.mark.parametrize(("q", "expected"), [(50, 50.0), (95, 95.0), (99, 99.0), (100, 100.0), (1, 1.0)])
def test_nearest_rank(q: float, expected: float) -> None:
    assert percentile([float(v) for v in range(1, 101)], q) == expected


def test_no_requests_is_a_clean_slate() -> None:
    snap = RecentRequests(capacity=10, window_seconds=60).snapshot()
    assert (snap.count, snap.success_rate, snap.error_rate, snap.p95) == (0, 1.0, 0.0, 0.0)


def test_capacity_bounds_memory() -> None:
    stats = RecentRequests(capacity=100, window_seconds=60)
    for i in range(10_000):
        stats.record(latency_ms=float(i), ok=True)
    snap = stats.snapshot()
    assert snap.count == 100
    assert snap.p50 == 9949.0


def test_old_requests_leave_the_window() -> None:
    clock = FakeClock(0.0)
    stats = RecentRequests(capacity=100, window_seconds=60, clock=clock)
    for _ in range(5):
        stats.record(latency_ms=10, ok=False)
    clock.now = 30
    for _ in range(15):
        stats.record(latency_ms=20, ok=True)
    assert stats.snapshot().error_rate == 0.25
    clock.now = 61
    snap = stats.snapshot()
    assert (snap.count, snap.error_rate, snap.p99) == (15, 0.0, 20.0)
