"""The operational endpoints: the health report in-process, then the ops endpoints on a real server."""

from __future__ import annotations

import httpx

from agent_runtime.ops import health_report

from .harness import Backend, auth, serving


async def test_database_down_is_unhealthy_and_names_it(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime()
    await runtime.start()
    try:
        assert (await health_report(runtime)).status == "healthy"
        await runtime.services.database.close()
        report = await health_report(runtime)
    finally:
        await runtime.stop()
    assert report.status == "unhealthy"
    assert report.reasons[0].startswith("database is down")
    [database] = [d for d in report.dependencies if d.name == "database"]
    assert database.state == "down"


async def test_stop_closes_services_and_is_not_ready(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime()
    await runtime.start()
    assert runtime.ready
    await runtime.stop()
    assert not runtime.ready
    assert not runtime.container.started


async def test_health_metrics_and_openapi(runtime_backend: Backend) -> None:
    with serving(runtime_backend.runtime()) as url:
        for _ in range(3):
            httpx.post(f"{url}/v1/run", json={"prompt": "x"}, headers=auth())
        httpx.post(f"{url}/v1/run", json={}, headers=auth())
        health = httpx.get(f"{url}/health")
        metrics = httpx.get(f"{url}/metrics")
        healthz = httpx.get(f"{url}/healthz")
        readyz = httpx.get(f"{url}/readyz")
        openapi = httpx.get(f"{url}/openapi.json").json()
    report = health.json()
    assert health.status_code == 200
    assert report["status"] == "healthy", report["reasons"]
    for key in ("status", "inFlight", "queued", "maxConcurrent", "errorRate", "successRate", "dependencies"):
        assert key in report
    assert set(report["latencyMs"]) == {"p50", "p95", "p99"}
    assert report["recentRequests"] == 3
    assert report["memory"]["rssBytes"] > 0
    assert {d["name"] for d in report["dependencies"]} == {"database", "cache", "audit", "rateLimiter"}
    assert healthz.status_code == readyz.status_code == 200
    text = metrics.text
    for series in (
        'agentry_requests_total{endpoint="run",status="200"} 3.0',
        'agentry_requests_total{endpoint="run",status="422"} 1.0',
        'agentry_errors_total{kind="invalid_request"} 1.0',
        "agentry_request_duration_seconds_bucket",
        'agentry_tokens_total{direction="input"}',
        'agentry_tokens_total{direction="output"}',
        "agentry_in_flight_requests 0.0",
        "agentry_queued_requests 0.0",
    ):
        assert series in text
    assert {"/v1/run", "/v1/run/batch", "/v1/results/{run_id}", "/health"} <= set(openapi["paths"])
    assert "RunRequest" in openapi["components"]["schemas"]
