"""SIGTERM under load on a real runtime process: admitted requests finish, no audit record is lost."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agent_runtime.security.audit import verify_chain
from agent_runtime.services.build import build_database

from .harness import Backend, auth, wait_for_load
from .process import running_runtime, write_manifest
from .servers import chat_completions_app, serve_in_thread

#: Seconds the stand-in model takes per answer, so requests are in flight when SIGTERM arrives.
MODEL_DELAY = 0.5


def slow_chat_app() -> Starlette:
    """An OpenAI-compatible chat endpoint that answers after MODEL_DELAY seconds."""

    async def completions(request: Request) -> JSONResponse:
        body = await request.json()
        await asyncio.sleep(MODEL_DELAY)
        message = {"role": "assistant", "content": "done"}
        return JSONResponse(
            {
                "id": "c",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
            }
        )

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


@pytest.fixture
def slow_model_url() -> Iterator[str]:
    with serve_in_thread(slow_chat_app()) as url:
        yield url


@pytest.mark.slow
async def test_sigterm_drains_in_flight_requests_and_keeps_every_audit_record(
    runtime_backend: Backend, slow_model_url: str
) -> None:
    spec = runtime_backend.spec(
        {
            "agent": {"model": "openai-chat:slow", "endpoint": {"baseURL": f"{slow_model_url}/v1"}},
            "concurrency": {"maxConcurrentRequests": 4, "maxQueuedRequests": 50, "requestTimeoutSeconds": 30},
        }
    )
    config = write_manifest(runtime_backend.data_dir / "agent.yaml", spec)
    with running_runtime(config=config, env=runtime_backend.env(), data_dir=runtime_backend.data_dir) as proc:
        async with httpx.AsyncClient(base_url=proc.url, timeout=60) as client:
            load = [
                asyncio.create_task(client.post("/v1/run", json={"prompt": f"p{i}"}, headers=auth())) for i in range(16)
            ]
            await wait_for_load(client, in_flight=4, queued=12)  # all 16 admitted before the signal
            proc.process.send_signal(signal.SIGTERM)
            responses = await asyncio.gather(*load, return_exceptions=True)
        exit_code = proc.wait()
        output = proc.output()
    statuses = [r.status_code if isinstance(r, httpx.Response) else type(r).__name__ for r in responses]
    assert statuses == [200] * 16, statuses  # every admitted request finished during the drain
    assert exit_code in (0, -signal.SIGTERM)
    audit_lines = [json.loads(line) for line in output.splitlines() if '"kind":"audit"' in line]
    assert len(audit_lines) == 16
    rows = await _stored_rows(runtime_backend, spec)
    assert len(rows) == 16
    assert verify_chain(rows).ok
    assert sorted(r.record["run_ids"][0] for r in rows) == sorted(resp.json()["runId"] for resp in responses)  # type: ignore[union-attr]


async def _stored_rows(backend: Backend, spec: dict[str, Any]) -> list[Any]:
    config = backend.config(spec)
    database = build_database(config=config, data_dir=backend.data_dir)
    await database.start()
    try:
        return [row async for row in database.iter_audit()]
    finally:
        await database.close()


@pytest.fixture
def streaming_model_url() -> Iterator[str]:
    """A stand-in model that streams its answer in 6 chunks, 0.4 s apart (2.4 s per answer)."""
    with serve_in_thread(chat_completions_app([], chunk_delay=0.4, chunks=6)) as url:
        yield url


@pytest.mark.slow
async def test_sigterm_lets_open_streams_finish_and_audits_each_once(
    runtime_backend: Backend, streaming_model_url: str
) -> None:
    spec = runtime_backend.spec(
        {
            "agent": {"model": "openai-chat:streamer", "endpoint": {"baseURL": f"{streaming_model_url}/v1"}},
            "concurrency": {"maxConcurrentRequests": 4, "requestTimeoutSeconds": 30},
        }
    )
    config = write_manifest(runtime_backend.data_dir / "agent.yaml", spec)

    async def read_stream(client: httpx.AsyncClient, prompt: str, started: asyncio.Event) -> list[str]:
        names = []
        async with client.stream("POST", "/v1/run/stream", json={"prompt": prompt}, headers=auth()) as response:
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    names.append(line.removeprefix("event: "))
                    if names[-1] == "delta":
                        started.set()
        return names

    with running_runtime(config=config, env=runtime_backend.env(), data_dir=runtime_backend.data_dir) as proc:
        async with httpx.AsyncClient(base_url=proc.url, timeout=60) as client:
            started = [asyncio.Event() for _ in range(2)]
            streams = [asyncio.create_task(read_stream(client, f"s{n}", started[n])) for n in range(2)]
            await asyncio.wait_for(asyncio.gather(*(event.wait() for event in started)), timeout=20)
            proc.process.send_signal(signal.SIGTERM)
            results = await asyncio.gather(*streams, return_exceptions=True)
        exit_code = proc.wait()
        output = proc.output()
    for names in results:
        assert isinstance(names, list), names
        assert names[0] == "start"
        assert names[-1] == "final"  # the stream under way when SIGTERM came ran to its end
        assert names.count("delta") >= 3
    assert exit_code in (0, -signal.SIGTERM)
    audited = [json.loads(line) for line in output.splitlines() if '"kind":"audit"' in line]
    assert sorted((r["record"]["endpoint"], r["record"]["status"]) for r in audited) == [("stream", 200)] * 2
