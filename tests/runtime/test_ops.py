"""The operational endpoints: the health report in-process, then the ops endpoints on a real server."""

from __future__ import annotations

import asyncio
import time

import httpx

from agent_runtime.ops import health_report
from agent_runtime.settings import RuntimeSettings

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
    assert {d["name"] for d in report["dependencies"]} == {"database", "cache", "audit", "rateLimiter", "budgets"}
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


async def test_health_and_metrics_count_open_streams_and_active_conversations(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime(settings=RuntimeSettings(conversation_count_interval=0.05))
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            started = [await client.post("/v1/run", json={"prompt": "x"}, headers=auth()) for _ in range(2)]
            assert all(answer.json()["conversationId"] for answer in started)
            runtime.admission.open_streams = 3  # what the streaming endpoints count while they send
            async with asyncio.timeout(5):
                while (report := (await client.get("/health")).json())["activeConversations"] != 2:
                    await asyncio.sleep(0.02)
            metrics = (await client.get("/metrics")).text
    assert report["openStreams"] == 3
    assert report["status"] == "healthy", report["reasons"]
    assert "agentry_open_streams 3.0" in metrics
    assert "agentry_active_conversations 2.0" in metrics


async def test_a_failing_count_leaves_health_answering_with_the_last_count(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime(settings=RuntimeSettings(conversation_count_interval=3600))
    await runtime.start()
    try:
        await runtime.services.database.save_conversation("c", "owner", "[]", now=time.time())
        await runtime.conversation_count.refresh()
        await runtime.services.database.close()
        await runtime.conversation_count.refresh()
        report = await health_report(runtime)
    finally:
        await runtime.stop()
    assert runtime.conversation_count.failing
    assert report.active_conversations == 1
    assert report.status == "unhealthy", "the database check tells what is wrong, not the count"
