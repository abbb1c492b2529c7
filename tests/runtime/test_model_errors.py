"""Failures of an OpenAI-compatible model endpoint become clear API errors (a loopback stand-in server)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pydantic_ai.models
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .harness import Backend, auth, serving
from .servers import serve_in_thread


def failing_chat_app(status: int) -> Starlette:
    """Answers every chat completion with `status` and an OpenAI-style error body."""

    async def completions(request: Request) -> JSONResponse:
        error = {"message": "scripted failure", "type": "server_error", "code": None}
        return JSONResponse({"error": error}, status_code=status, headers={"retry-after-ms": "1"})

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


@pytest.fixture
def allow_model_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pydantic_ai.models, "ALLOW_MODEL_REQUESTS", True)  # loopback stand-ins only


@pytest.fixture(params=[(500, 502, "model_error"), (429, 503, "model_rate_limited"), (401, 502, "model_error")])
def failing_endpoint(request: pytest.FixtureRequest) -> Iterator[tuple[str, int, str]]:
    upstream, status, kind = request.param
    with serve_in_thread(failing_chat_app(upstream)) as url:
        yield url, status, kind


@pytest.mark.usefixtures("allow_model_requests")
async def test_model_endpoint_failures_map_to_clear_errors(
    runtime_backend: Backend, failing_endpoint: tuple[str, int, str]
) -> None:
    url, status, kind = failing_endpoint
    runtime = runtime_backend.runtime({"agent": {"model": "openai-chat:m", "endpoint": {"baseURL": f"{url}/v1"}}})
    with serving(runtime) as base:
        response = httpx.post(f"{base}/v1/run", json={"prompt": "x"}, headers=auth(), timeout=60)
        health = httpx.get(f"{base}/health").json()
    assert response.status_code == status
    assert response.json()["error"]["type"] == kind
    assert health["errorRate"] == 1.0
