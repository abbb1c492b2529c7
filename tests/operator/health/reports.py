"""Complete /health answers for the stand-ins that play a runtime, built from the contract's own model."""

from __future__ import annotations

from typing import Any, Literal

from agentry_api.health import Dependency, HealthReport, Memory, Percentiles

#: A quiet, healthy runtime: nothing in flight, fast, one dependency that is fine.
_QUIET = HealthReport(
    status="healthy",
    reasons=[],
    uptime_seconds=60.0,
    memory=Memory(rss_bytes=64 * 1024 * 1024),
    in_flight=0,
    queued=0,
    max_concurrent=10,
    max_queued=20,
    draining=False,
    recent_requests=0,
    success_rate=1.0,
    error_rate=0.0,
    latency_ms=Percentiles(p50=5, p95=9, p99=12),
    dependencies=[Dependency(name="database", state="ok", detail="", latency_ms=1.0)],
    circuit_breakers=[],
)


def report_body(**overrides: Any) -> dict[str, Any]:
    """A quiet runtime's report as it goes on the wire, with top-level fields replaced by their wire names.

    Overrides are not validated, so a test can also send what no runtime would (`status=None`).
    """
    return _QUIET.model_dump(mode="json", by_alias=True) | overrides


def dependency(name: str, state: Literal["ok", "degraded", "down"], detail: str = "") -> dict[str, Any]:
    """One entry of `dependencies` on the wire, for `report_body(dependencies=[...])`."""
    return Dependency(name=name, state=state, detail=detail, latency_ms=1.0).model_dump(mode="json", by_alias=True)
