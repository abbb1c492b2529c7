"""The /v1 endpoints on a real uvicorn server: runs and batches, bodies refused naming the problem, unknown routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from agent_runtime.settings import RuntimeSettings

from .harness import Backend, auth, serving
from .models import echo_model


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
