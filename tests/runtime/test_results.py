"""Run results: stored anonymised and read back through the cache, 404 for none, 503 when the database is down."""

from __future__ import annotations

import json

import httpx
import pytest

from agent_runtime import results
from agent_runtime.errors import ApiError

from .harness import Backend, auth, serving
from .models import echo_model


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
            assert set(body) == {
                "runId",
                "output",
                "usage",
                "latencyMs",
                "conversationId",
                "status",
                "pendingApprovals",
            }
            assert (body["status"], body["pendingApprovals"]) == ("completed", [])
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


async def test_reading_a_result_with_the_database_down_is_a_503(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime()
    await runtime.start()
    try:
        await runtime.services.database.close()
        with pytest.raises(ApiError) as refused:
            await results.load(runtime.services, "abc")
    finally:
        await runtime.stop()
    assert (refused.value.status, refused.value.kind) == (503, "database_unavailable")
    assert refused.value.retry_after == 5
