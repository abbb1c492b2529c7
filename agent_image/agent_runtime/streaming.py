"""Streamed runs on the wire: the response that holds the envelope open, and Agentry's own SSE events.

A streamed run is opened by the envelope (`Envelope.open_stream`: token budget, conversation lease and admission
slot, all before the first byte, so refusals are real HTTP statuses). Its events are then pydantic-ai's own
(`AgentStreamEvent`, ending with `AgentRunResultEvent`) followed by one of Agentry's: `Completed` once the result
is stored, or `Failed`. Each protocol turns those into its wire format (this module: `/v1/run/stream`; the
OpenAI and AG-UI modules theirs) and hands them to `StreamResponse`, which

- watches for the client going away while the run is quiet, and cancels the run then (not at the next write);
- always closes the stream, in a shielded scope, so the slot and lease are freed, the partial output stored
  and the one audit record written even when the client disconnected or the server is shutting down.

Agentry's events on `/v1/run/stream` (`text/event-stream`, one JSON object per `data:` line):

    start        {"runId", "conversationId"}                 first, once admitted
    delta        {"text"}                                    text as the model writes it
    tool_call    {"tool", "callId", "args"}                  a function tool the model called
    tool_result  {"tool", "callId", "ok", "content"}         what it returned (or its error, ok false)
    final        RunResponse (output, usage, runId, ...)      the validated output, after it was stored
    error        {"type", "message"}                         the run failed; nothing follows
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
from opentelemetry import context as otel_context
from pydantic import BaseModel
from pydantic_ai.messages import (
    AgentStreamEvent,
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    PartDeltaEvent,
    PartStartEvent,
    RetryPromptPart,
    TextPart,
    TextPartDelta,
)
from pydantic_ai.run import AgentRunResultEvent
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from .errors import ApiError
from .schemas import ErrorBody, RunResponse, StreamDelta, StreamStart, StreamToolCall, StreamToolResult

#: Status recorded (audit, metrics) for a stream the client closed before the run ended (nginx's convention).
CLIENT_CLOSED = 499
#: Quiet seconds after which a stream sends a comment line, shorter than the usual 60 s idle timeout of proxies.
KEEPALIVE_SECONDS = 15.0
#: The comment line: SSE clients ignore it (and AG-UI's and OpenAI's clients parse SSE).
KEEPALIVE = b": keep-alive\n\n"
#: Headers every event stream carries: no caching, and no buffering by a proxy in front (nginx honours it).
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass(frozen=True)
class Completed:
    """The run ended well and its (redacted) result is stored: the answer the caller gets, unredacted."""

    response: RunResponse


@dataclass(frozen=True)
class Failed:
    """The run failed (model, tool, timeout, storage); the error as a non-streamed request would get it."""

    error: ApiError


#: What a streamed run yields, in order: pydantic-ai's events, then Completed or Failed.
RunEvent = AgentStreamEvent | AgentRunResultEvent[Any] | Completed | Failed


class ClosableStream(Protocol):
    """The run behind a response: closed exactly once, however the response ended."""

    async def close(self, *, disconnected: bool) -> ApiError | None:
        """Free what the run holds; the error the request ended with (None when it completed)."""
        ...


class StreamResponse(Response):
    """An event stream whose run is cancelled when the client leaves and closed whatever happens.

    `on_end` (set by the envelope) then writes the audit record and the metrics with the error `close`
    returned, once, after the last byte.
    """

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        *,
        stream: ClosableStream,
        media_type: str = "text/event-stream",
        headers: dict[str, str] | None = None,
        keepalive: float = KEEPALIVE_SECONDS,
    ) -> None:
        # Like StreamingResponse: no body attribute, hence no Content-Length (the body is chunked).
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers({**STREAM_HEADERS, **(headers or {})})
        self.chunks = chunks
        self.stream = stream
        self.keepalive = keepalive
        self.on_end: Callable[[ApiError | None], Awaitable[None]] | None = None
        self.trace_context: otel_context.Context | None = None
        """The request's trace (set by the envelope), current while the events are made."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the chunks while watching for a disconnect; then close the run, shielded from cancellation."""
        disconnected = False
        attached = None if self.trace_context is None else otel_context.attach(self.trace_context)
        try:
            async with anyio.create_task_group() as group:

                async def watch() -> None:
                    nonlocal disconnected
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    disconnected = True
                    group.cancel_scope.cancel()

                group.start_soon(watch)
                try:
                    await self._send_all(send)
                except OSError:
                    disconnected = True
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                error = await self._close(disconnected=disconnected)
                if self.on_end is not None:
                    await self.on_end(error)
            if attached is not None:
                otel_context.detach(attached)

    async def _send_all(self, send: Send) -> None:
        """The chunks as they come, and an SSE comment after `keepalive` quiet seconds (a long tool call, say).

        A proxy in front thus never closes a stream it thinks idle.
        """
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        chunks = aiter(self.chunks)
        waiting: asyncio.Future[bytes] | None = None
        try:
            while True:
                waiting = waiting or asyncio.ensure_future(anext(chunks))
                done, _ = await asyncio.wait({waiting}, timeout=self.keepalive)
                if not done:
                    await send(_body(KEEPALIVE, more=True))
                    continue
                finished, waiting = waiting, None
                try:
                    chunk = finished.result()
                except StopAsyncIteration:
                    break
                await send(_body(chunk, more=True))
        finally:
            if waiting is not None:  # the client left, or sending failed: stop the chunk being made
                waiting.cancel()
                with contextlib.suppress(BaseException):
                    await waiting
        await send(_body(b"", more=False))

    async def _close(self, *, disconnected: bool) -> ApiError | None:
        aclose = getattr(self.chunks, "aclose", None)
        if aclose is not None:
            await aclose()
        return await self.stream.close(disconnected=disconnected)


def _body(chunk: bytes, *, more: bool) -> Message:
    return {"type": "http.response.body", "body": chunk, "more_body": more}


def sse(event: str | None, data: Any) -> bytes:
    """One Server-Sent Event: an optional `event:` line and the data as one line of compact JSON."""
    line = "data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str) + "\n\n"
    return (line if event is None else f"event: {event}\n{line}").encode()


def agentry_event(event: RunEvent) -> bytes | None:
    """The `/v1/run/stream` event for one run event; None for those the caller need not see."""
    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart) and event.part.content:
        return _wire("delta", StreamDelta(text=event.part.content))
    if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta) and event.delta.content_delta:
        return _wire("delta", StreamDelta(text=event.delta.content_delta))
    if isinstance(event, FunctionToolCallEvent):
        call = event.part
        return _wire(
            "tool_call", StreamToolCall(tool=call.tool_name, call_id=call.tool_call_id, args=call.args_as_dict())
        )
    if isinstance(event, FunctionToolResultEvent):
        result = event.part
        failed = isinstance(result, RetryPromptPart)
        content = result.model_response_str() if isinstance(result, RetryPromptPart) else result.content
        return _wire(
            "tool_result",
            StreamToolResult(tool=result.tool_name, call_id=result.tool_call_id, ok=not failed, content=content),
        )
    if isinstance(event, Completed):
        return _wire("final", event.response)
    if isinstance(event, Failed):
        return _wire("error", ErrorBody(type=event.error.kind, message=event.error.message))
    return None


def _wire(event: str, body: BaseModel) -> bytes:
    return sse(event, body.model_dump(mode="json", by_alias=True))


#: Each event of `/v1/run/stream` with the model of its data, for the OpenAPI document.
AGENTRY_EVENTS: dict[str, type[BaseModel]] = {
    "start": StreamStart,
    "delta": StreamDelta,
    "tool_call": StreamToolCall,
    "tool_result": StreamToolResult,
    "final": RunResponse,
    "error": ErrorBody,
}


def text_of(event: RunEvent) -> str:
    """The text an event adds to the answer (what a partial output is made of)."""
    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
        return event.part.content
    if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
        return event.delta.content_delta
    return ""
