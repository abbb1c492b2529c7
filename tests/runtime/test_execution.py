"""Running the agent on a real server: the output schema with its retries, usage limits, the request timeout."""

from __future__ import annotations

import httpx

from .harness import Backend, auth, serving
from .models import echo_model, structured_model

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}, "required": ["n"]}


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


async def test_a_request_over_its_timeout_is_a_504(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime({"concurrency": {"requestTimeoutSeconds": 0.3}}, model=echo_model(delay=2))
    with serving(runtime) as url:
        response = httpx.post(f"{url}/v1/run", json={"prompt": "slow"}, headers=auth(), timeout=10)
        health = httpx.get(f"{url}/health").json()
    assert response.status_code == 504
    assert response.json()["error"] == {"type": "timeout", "message": "the request did not finish within 0.3s"}
    assert health["errorRate"] == 1.0
