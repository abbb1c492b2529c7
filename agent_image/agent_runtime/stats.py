"""Recent request outcomes in a bounded ring buffer: the source of /health's rates and percentiles."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Snapshot:
    """Rates and latency percentiles of the requests inside the window."""

    count: int
    success_rate: float
    error_rate: float
    p50: float
    p95: float
    p99: float


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted values; 0 for none."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


class RecentRequests:
    """The last `capacity` runs as (time, latency, ok); older ones fall off, so memory is fixed.

    Runs older than `window_seconds` are ignored in snapshots, so a burst of errors an hour ago does not
    keep a quiet pod degraded.
    """

    def __init__(self, *, capacity: int, window_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_seconds = window_seconds
        self._clock = clock
        self._samples: deque[tuple[float, float, bool]] = deque(maxlen=capacity)

    def record(self, *, latency_ms: float, ok: bool) -> None:
        """Add one finished run."""
        self._samples.append((self._clock(), latency_ms, ok))

    def snapshot(self) -> Snapshot:
        """Rates and percentiles of the runs inside the window; success rate 1 when there were none."""
        horizon = self._clock() - self.window_seconds
        recent = [(latency, ok) for at, latency, ok in self._samples if at >= horizon]
        if not recent:
            return Snapshot(count=0, success_rate=1.0, error_rate=0.0, p50=0.0, p95=0.0, p99=0.0)
        latencies = sorted(latency for latency, _ in recent)
        errors = sum(1 for _, ok in recent if not ok)
        return Snapshot(
            count=len(recent),
            success_rate=(len(recent) - errors) / len(recent),
            error_rate=errors / len(recent),
            p50=percentile(latencies, 50),
            p95=percentile(latencies, 95),
            p99=percentile(latencies, 99),
        )
