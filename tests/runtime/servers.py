"""Running a real uvicorn server in a background thread, for stand-in upstreams and the runtime itself."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp


@contextmanager
def serve_in_thread(
    app: ASGIApp, *, server_class: type[uvicorn.Server] = uvicorn.Server, port: int = 0, **kwargs: object
) -> Iterator[str]:
    """Serve `app` on a loopback port (`port`, or one chosen by the kernel); yield its base URL, shut down on exit.

    A given port may be one a previous server of the test used (SO_REUSEADDR), to play a server coming back.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="auto", timeout_graceful_shutdown=10)
    server = server_class(config, **kwargs)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def chat_completions_app(
    requests: list[dict[str, Any]], *, delay: float = 0.0, chunk_delay: float = 0.0, chunks: int = 5
) -> Starlette:
    """A stand-in for an OpenAI-compatible model server: echoes the last user message after `delay` seconds.

    Asked to stream, it sends the answer in `chunks` pieces, `chunk_delay` seconds apart (the first one too),
    then a usage chunk when `stream_options.include_usage` asks for it, then `[DONE]`.
    """

    async def completions(request: Request) -> Response:
        body = await request.json()
        headers = request.headers
        requests.append(
            {"authorization": headers.get("authorization"), "traceparent": headers.get("traceparent"), "body": body}
        )
        await asyncio.sleep(delay)
        answer = f"echo: {body['messages'][-1]['content']}"
        usage = {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
        if body.get("stream"):
            return StreamingResponse(_chunks(body, answer, usage, chunk_delay, chunks), media_type="text/event-stream")
        return JSONResponse(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1700000000,
                "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}],
                "usage": usage,
            }
        )

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


async def _chunks(
    body: dict[str, Any], answer: str, usage: dict[str, int], chunk_delay: float, chunks: int
) -> AsyncIterator[str]:
    size = max(1, -(-len(answer) // chunks))
    pieces = [answer[i : i + size] for i in range(0, len(answer), size)]
    for index, piece in enumerate(pieces):
        await asyncio.sleep(chunk_delay)
        delta: dict[str, Any] = {"content": piece} | ({"role": "assistant"} if index == 0 else {})
        finish = "stop" if index == len(pieces) - 1 else None
        yield _chunk(body, {"index": 0, "delta": delta, "finish_reason": finish})
    if body.get("stream_options", {}).get("include_usage"):
        yield _chunk(body, None, usage=usage)
    yield "data: [DONE]\n\n"


def _chunk(body: dict[str, Any], choice: dict[str, Any] | None, **extra: Any) -> str:
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": body["model"],
        "choices": [] if choice is None else [choice],
        **extra,
    }
    return f"data: {json.dumps(chunk)}\n\n"


def free_port() -> int:
    """A loopback port nothing listens on now, for a server that is to come up later in the test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
