"""The health verdict as a pure function of checks, breakers and recent statistics."""

from __future__ import annotations

import pytest

from agent_runtime.health import judge
from agent_runtime.services.breaker import BreakerState
from agent_runtime.services.protocols import HealthState, ServiceHealth
from agent_runtime.stats import Snapshot
from agentry_api.v1alpha1 import HealthSpec

SPEC = HealthSpec.model_validate({"maxP95LatencyMs": 500, "maxErrorRatePercent": 5})
QUIET = Snapshot(count=0, success_rate=1, error_rate=0, p50=0, p95=0, p99=0)


def deps(database: HealthState = "ok", cache: HealthState = "ok") -> list[ServiceHealth]:
    return [ServiceHealth(name="database", state=database), ServiceHealth(name="cache", state=cache)]


@pytest.mark.parametrize(
    ("checks", "breakers", "recent", "status"),
    [
        (deps(), [], QUIET, "healthy"),
        (deps(database="down"), [], QUIET, "unhealthy"),
        (deps(cache="down"), [], QUIET, "degraded"),
        (deps(), ["open"], QUIET, "degraded"),
        (deps(), ["closed"], QUIET, "healthy"),
        (deps(), [], Snapshot(count=100, success_rate=0.9, error_rate=0.1, p50=1, p95=1, p99=1), "degraded"),
        (deps(), [], Snapshot(count=5, success_rate=0.6, error_rate=0.4, p50=1, p95=1, p99=1), "healthy"),
        (deps(), [], Snapshot(count=50, success_rate=1, error_rate=0, p50=100, p95=900, p99=1000), "degraded"),
    ],
    ids=["ok", "database-down", "cache-down", "breaker-open", "breaker-closed", "errors", "too-few", "slow"],
)
def test_verdict(checks: list[ServiceHealth], breakers: list[BreakerState], recent: Snapshot, status: str) -> None:
    verdict, reasons = judge(dependencies=checks, breakers=breakers, recent=recent, spec=SPEC)
    assert verdict == status
    assert bool(reasons) == (status != "healthy")
