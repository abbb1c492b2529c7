"""The health verdict: a pure function of dependency checks, breakers and recent request statistics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from agentry_api.v1alpha1 import HealthSpec

from .services.breaker import BreakerState
from .services.protocols import ServiceHealth
from .stats import Snapshot

Status = Literal["healthy", "degraded", "unhealthy"]

#: Runs needed in the window before the error rate can degrade a pod; one failure of two is not a trend.
MIN_REQUESTS_FOR_RATES = 10


def judge(
    *,
    dependencies: Sequence[ServiceHealth],
    breakers: Sequence[BreakerState],
    recent: Snapshot,
    spec: HealthSpec,
    required: frozenset[str] = frozenset({"database"}),
) -> tuple[Status, list[str]]:
    """The status and the reasons for it.

    Unhealthy only when a required dependency (the database: no results, no audit trail) is down,
    because the operator restarts unhealthy pods and a restart cures none of the other causes.
    Degraded for anything that hurts but leaves the pod useful.
    """
    unhealthy = [f"{d.name} is down: {d.detail}" for d in dependencies if d.name in required and d.state == "down"]
    if unhealthy:
        return "unhealthy", unhealthy
    reasons = [f"{d.name} is {d.state}: {d.detail}" for d in dependencies if d.state != "ok"]
    open_breakers = sum(1 for state in breakers if state != "closed")
    if open_breakers:
        reasons.append(f"{open_breakers} circuit breaker(s) not closed")
    if recent.count >= MIN_REQUESTS_FOR_RATES and recent.error_rate * 100 > spec.max_error_rate_percent:
        reasons.append(f"error rate {recent.error_rate:.1%} above {spec.max_error_rate_percent:g}%")
    if spec.max_p95_latency_ms is not None and recent.count and recent.p95 > spec.max_p95_latency_ms:
        reasons.append(f"p95 latency {recent.p95:.0f}ms above {spec.max_p95_latency_ms}ms")
    return ("degraded" if reasons else "healthy"), reasons
