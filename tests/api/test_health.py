"""The /health report model: what the runtime sends and the operator reads, across versions of either."""

from __future__ import annotations

from typing import Any

from agentry_api.health import HealthReport

#: The report of a runtime from before streams and conversations were counted (issue 15).
OLDER_RUNTIME: dict[str, Any] = {
    "status": "healthy",
    "reasons": [],
    "uptimeSeconds": 1.0,
    "memory": {"rssBytes": 1},
    "inFlight": 0,
    "queued": 0,
    "maxConcurrent": 10,
    "maxQueued": 20,
    "draining": False,
    "recentRequests": 0,
    "successRate": 1.0,
    "errorRate": 0.0,
    "latencyMs": {"p50": 1, "p95": 2, "p99": 3},
    "dependencies": [],
    "circuitBreakers": [],
}


def test_an_older_runtimes_report_parses_with_no_streams_or_conversations() -> None:
    report = HealthReport.model_validate(OLDER_RUNTIME)
    assert (report.open_streams, report.active_conversations) == (0, 0)


def test_the_counts_are_camel_case_on_the_wire() -> None:
    report = HealthReport.model_validate(OLDER_RUNTIME | {"openStreams": 4, "activeConversations": 7})
    assert (report.open_streams, report.active_conversations) == (4, 7)
    wire = report.model_dump(mode="json", by_alias=True)
    assert (wire["openStreams"], wire["activeConversations"]) == (4, 7)
