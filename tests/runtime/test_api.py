"""The HTTP API end to end on a real uvicorn server: runs, batches, results, auth, errors, ops endpoints."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from agent_runtime.runtime import Runtime
from agent_runtime.security.audit import verify_chain
from agent_runtime.services.build import build_database
from agent_runtime.services.protocols import AuditRow
from agent_runtime.settings import RuntimeSettings

from .harness import Backend, auth, serving
from .models import echo_model, structured_model

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}, "required": ["n"]}


async def test_run_then_read_the_stored_result_anonymised(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime(model=echo_model())
    prompt = "Mail bob@example.org or call +1 415 555 0100 about the invoice"
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            run = await client.post(
                "/v1/run", json={"prompt": prompt, "context": {"ssn": "123-45-6789"}}, headers=auth()
            )
            assert run.status_code == 200, run.text
            body = run.json()
            assert body["output"].startswith(f"echo: {prompt}")  # the caller gets its own output back
            assert set(body) == {"runId", "output", "usage", "latencyMs"}
            assert body["usage"]["requests"] == 1
            assert body["usage"]["inputTokens"] > 0
            stored = await client.get(f"/v1/results/{body['runId']}", headers=auth("read_only"))
            assert stored.status_code == 200
            again = await client.get(f"/v1/results/{body['runId']}", headers=auth("read_only"))
    record = stored.json()
    assert again.json() == record
    assert record["runId"] == body["runId"]
    text = json.dumps(record)
    for secret in ("bob@example.org", "555 0100", "123-45-6789", "alice@example.com"):
        assert secret not in text
    assert record["usage"] == body["usage"]


async def test_unknown_result_is_404_with_a_message(runtime_backend: Backend) -> None:
    with serving(runtime_backend.runtime()) as url:
        response = httpx.get(f"{url}/v1/results/nope", headers=auth())
    assert response.status_code == 404
    assert response.json() == {"error": {"type": "not_found", "message": "no result with id 'nope'"}}


async def test_structured_output(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime({"agent": {"outputSchema": SCHEMA}})
    with serving(runtime) as url:
        response = httpx.post(f"{url}/v1/run", json={"prompt": "count"}, headers=auth())
    assert response.status_code == 200
    assert isinstance(response.json()["output"]["n"], int)


async def test_output_that_never_matches_the_schema_is_a_502(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime(
        {"agent": {"outputSchema": SCHEMA, "outputRetries": 1}}, model=structured_model(lambda p, a: {"n": -1})
    )
    with serving(runtime) as url:
        response = httpx.post(f"{url}/v1/run", json={"prompt": "count"}, headers=auth())
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "model_output_invalid"


async def test_usage_limit_is_a_422(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime({"agent": {"usageLimits": {"inputTokensLimit": 3}}})
    with serving(runtime) as url:
        response = httpx.post(f"{url}/v1/run", json={"prompt": "far more than three tokens of input"}, headers=auth())
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "usage_limit_exceeded"


async def test_batch_answers_every_item_in_order_with_failures(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime(model=echo_model(delay=0.01))
    prompts = [f"item {i}" if i % 3 else f"explode {i}" for i in range(10)]
    with serving(runtime) as url:
        response = httpx.post(
            f"{url}/v1/run/batch", json={"items": [{"prompt": p} for p in prompts]}, headers=auth(), timeout=30
        )
    assert response.status_code == 200
    body = response.json()
    assert [item["index"] for item in body["items"]] == list(range(10))
    for prompt, item in zip(prompts, body["items"], strict=True):
        if "explode" in prompt:
            assert item["ok"] is False
            assert item["error"]["type"] == "internal"
        else:
            assert item["ok"] is True
            assert item["result"]["output"] == f"echo: {prompt}"
    assert (body["succeeded"], body["failed"]) == (6, 4)


@pytest.mark.parametrize(
    ("headers", "status", "kind"),
    [
        ({}, 401, "unauthenticated"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "unauthenticated"),
        ({"Authorization": "Bearer not.a.jwt"}, 401, "unauthenticated"),
        (auth("read_only"), 403, "forbidden"),
        (auth("data_analyst"), 403, "forbidden"),
    ],
)
async def test_callers_without_a_valid_token_or_role_are_refused(
    runtime_backend: Backend, headers: dict[str, str], status: int, kind: str
) -> None:
    with serving(runtime_backend.runtime()) as url:
        response = httpx.post(f"{url}/v1/run", json={"prompt": "hi"}, headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["type"] == kind
    assert response.json()["error"]["message"]


async def test_mode_none_needs_no_token(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime({"security": {"auth": {"mode": "none", "secretRef": None}}})
    with serving(runtime) as url:
        response = httpx.post(f"{url}/v1/run", json={"prompt": "hi"})
    assert response.status_code == 200


#: Nesting deeper than the JSON parser's recursion limit, small enough to pass the size limit.
DEEP = b"[" * 1900 + b"]" * 1900
BAD_REQUESTS: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("not json", b"{prompt:", {}, 400, "not valid JSON"),
    ("empty body", b"", {}, 400, "empty"),
    ("array", b"[1, 2]", {}, 422, "expected a JSON object"),
    ("missing prompt", b"{}", {}, 422, "prompt: Field required"),
    ("prompt not a string", b'{"prompt": 5}', {}, 422, "prompt: Input should be a valid string"),
    ("empty prompt", b'{"prompt": ""}', {}, 422, "prompt: String should have at least 1 character"),
    (
        "context not an object",
        b'{"prompt": "x", "context": [1]}',
        {},
        422,
        "context: Input should be a valid dictionary",
    ),
    ("unknown field", b'{"prompt": "x", "temperature": 2}', {}, 422, "temperature: Extra inputs are not permitted"),
    ("just too large", b'{"prompt": "' + b"x" * 5000 + b'"}', {}, 413, "larger than 4096 bytes"),
    ("too large", b'{"prompt": "' + b"y" * 100_000 + b'"}', {}, 413, "larger than 4096 bytes"),
    (
        "deeply nested",
        b'{"prompt": "x", "context": {"a": ' + b"[" * 1900 + b"]" * 1900 + b"}}",
        {},
        400,
        "not valid JSON",
    ),
]


@pytest.mark.parametrize(
    ("name", "body", "headers", "status", "message"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS]
)
async def test_malformed_requests_get_a_4xx_naming_the_problem(
    runtime_backend: Backend, name: str, body: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    runtime = runtime_backend.runtime(settings=RuntimeSettings(max_body_bytes=4096))
    with serving(runtime) as url:
        response = httpx.post(f"{url}/v1/run", content=body, headers={**auth(), "Content-Type": "application/json"})
    assert response.status_code == status
    assert message in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "status"), [("GET", "/v1/nothing", 404), ("GET", "/v1/run", 405), ("DELETE", "/health", 405)]
)
async def test_unknown_routes_and_methods_answer_json(
    runtime_backend: Backend, method: str, path: str, status: int
) -> None:
    with serving(runtime_backend.runtime()) as url:
        response = httpx.request(method, f"{url}{path}")
    assert response.status_code == status
    assert response.json()["error"]["message"]


async def test_batch_over_the_item_limit_is_refused(runtime_backend: Backend) -> None:
    with serving(runtime_backend.runtime()) as url:
        response = httpx.post(f"{url}/v1/run/batch", json={"items": [{"prompt": "x"}] * 101}, headers=auth())
    assert response.status_code == 422
    assert "items: at most 100" in response.json()["error"]["message"]


async def test_rate_limit_per_principal_with_retry_after(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime({"security": {"rateLimit": {"requestsPerMinute": 2}}})
    with serving(runtime) as url:
        alice = [httpx.post(f"{url}/v1/run", json={"prompt": "x"}, headers=auth()) for _ in range(3)]
        bob = httpx.post(f"{url}/v1/run", json={"prompt": "x"}, headers=auth(subject="bob"))
        metrics = httpx.get(f"{url}/metrics").text
    assert [r.status_code for r in alice] == [200, 200, 429]
    assert int(alice[2].headers["Retry-After"]) >= 1
    assert alice[2].json()["error"]["type"] == "rate_limited"
    assert bob.status_code == 200
    assert 'agentry_rate_limited_total{limit="requests_per_minute"} 1.0' in metrics


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


async def test_every_request_is_audited_including_refused_ones(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime()
    with serving(runtime) as url:
        httpx.post(f"{url}/v1/run", json={"prompt": "x"}, headers=auth())
        httpx.post(f"{url}/v1/run", json={"prompt": "x"})
        httpx.post(f"{url}/v1/run", content=b"{", headers=auth())
        httpx.get(f"{url}/v1/results/x", headers=auth())
    records = await stored_audit(runtime, runtime_backend)
    assert [(r["endpoint"], r["status"]) for r in records] == [
        ("run", 200),
        ("run", 401),
        ("run", 400),
        ("results", 404),
    ]
    assert records[1]["principal"] == "-"
    assert "alice@example.com" not in json.dumps(records)
    assert verify_chain(await stored_rows(runtime, runtime_backend)).ok


async def stored_rows(runtime: Runtime, backend: Backend) -> list[AuditRow]:
    """The stored audit rows, read with a fresh connection after the server stopped."""
    database = build_database(config=runtime.config, data_dir=backend.data_dir)
    await database.start()
    try:
        return [row async for row in database.iter_audit()]
    finally:
        await database.close()


async def stored_audit(runtime: Runtime, backend: Backend) -> list[dict[str, Any]]:
    """The stored audit records."""
    return [dict(row.record) for row in await stored_rows(runtime, backend)]


async def test_concurrent_runs_all_answered(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime(model=echo_model(delay=0.05))
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            responses = await asyncio.gather(
                *(client.post("/v1/run", json={"prompt": f"p{i}"}, headers=auth()) for i in range(12))
            )
    assert sorted(r.json()["output"] for r in responses) == sorted(f"echo: p{i}" for i in range(12))


async def test_a_chunked_body_is_cut_off_at_the_limit(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime(settings=RuntimeSettings(max_body_bytes=4096))

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"prompt": "'
        for _ in range(100):
            yield b"z" * 1000
        yield b'"}'

    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            response = await client.post("/v1/run", content=chunks(), headers=auth())
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
