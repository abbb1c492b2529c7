"""AG-UI at `POST /v1/ag-ui`: a front end's run input in, AG-UI events out, inside the request envelope.

pydantic-ai's AG-UI adapter does the protocol both ways (run input to messages, the run's events to AG-UI
events, their encoding); the envelope does everything else, as for `/v1/run/stream` (streaming.py): token
budget, admission, timeout, output schema, the stored and redacted result, the audit record.

What maps to what:
- AG-UI clients send the whole thread every time, so the last message is the prompt (a user message with text)
  and the earlier ones are the history, after the adapter's sanitising (a client's system messages are
  dropped: the agent's own instructions rule). That history is the client's, not stored, as with OpenAI's API.
- `threadId` and `runId` are echoed in the events; the run's own id (the stored result's) is Agentry's.
- Front-end tools (`tools`) would need deferred tool calls, which Agentry does not yet offer: a request that
  brings some is refused with 400 naming the field, rather than its tools being silently ignored. `state`,
  `context` and `forwardedProps` are accepted and not used.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from typing import Any

from ag_ui.core import RunAgentInput, TextPart, UserMessage
from pydantic import ValidationError
from pydantic_ai.messages import ModelMessage
from pydantic_ai.ui.ag_ui import AGUIAdapter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .bodies import read_body
from .envelope import Envelope, RequestRecord, StreamRun
from .errors import ApiError
from .openapi import RUN_ERRORS, event_stream_operation
from .schemas import RunItem
from .security.auth import Principal
from .security.permissions import Permission
from .streaming import Completed, Failed, StreamResponse

PATH = "/v1/ag-ui"


def parse_run_input(raw: bytes) -> RunAgentInput:
    """The AG-UI run input; 422 naming the first invalid field."""
    try:
        return AGUIAdapter.build_run_input(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise ApiError(422, "invalid_request", f"{where}: {first['msg']}") from None


def prompt_of(run_input: RunAgentInput, *, max_chars: int) -> str:
    """The text of the last message, which must be the user's; 400 otherwise."""
    if run_input.tools:
        raise ApiError(400, "invalid_request", "tools: front-end tools are not supported by this agent")
    if not run_input.messages or not isinstance(run_input.messages[-1], UserMessage):
        raise ApiError(400, "invalid_request", "messages: the last message must be the user's")
    content = run_input.messages[-1].content
    text = content if isinstance(content, str) else "\n".join(p.text for p in content if isinstance(p, TextPart))
    if not text.strip():
        raise ApiError(400, "invalid_request", f"messages[{len(run_input.messages) - 1}].content: no text")
    if len(text) > max_chars:
        raise ApiError(
            422, "invalid_request", f"messages[-1].content: String should have at most {max_chars} characters"
        )
    return text


def history_of(adapter: AGUIAdapter[Any, Any]) -> list[ModelMessage]:
    """The messages before the prompt, as pydantic-ai's, sanitised (no client system prompt)."""
    earlier = adapter.load_messages(adapter.run_input.messages[:-1])
    with warnings.catch_warnings():
        # pydantic-ai warns that it stripped a client's system prompt: that is the documented behaviour here.
        warnings.simplefilter("ignore", UserWarning)
        return adapter.sanitize_messages(earlier)


async def native_events(run: StreamRun) -> AsyncIterator[Any]:
    """The run's pydantic-ai events for the adapter; Agentry's failure becomes the error it turns into RUN_ERROR."""
    async for event in run.events():
        if isinstance(event, Failed):
            raise event.error
        if not isinstance(event, Completed):
            yield event


def agui_paths() -> dict[str, Any]:
    """`/v1/ag-ui` in the OpenAPI document: AG-UI's own bodies, Agentry's refusals."""
    request = {
        "type": "object",
        "description": "AG-UI RunAgentInput (https://docs.ag-ui.com/sdk/js/core/types#runagentinput); the last "
        "message is the user's prompt, the earlier ones the history; `tools` must be empty.",
    }
    operation = event_stream_operation(
        "agUiRun",
        "Run the agent for an AG-UI front end.",
        request=request,
        events="AG-UI events (RUN_STARTED, TEXT_MESSAGE_*, TOOL_CALL_*, RUN_FINISHED or RUN_ERROR).",
        errors=RUN_ERRORS,
    )
    return {PATH: {"post": operation}}


def agui_routes(envelope: Envelope) -> list[Route]:
    """`POST /v1/ag-ui`, bound to one runtime's envelope."""
    runtime = envelope.runtime
    settings = runtime.settings
    max_bytes, max_chars = settings.max_body_bytes, settings.max_prompt_chars

    async def agui(request: Request) -> Response:
        async def work(principal: Principal, record: RequestRecord) -> Response:
            raw = await read_body(request, max_bytes=max_bytes)
            record.request_bytes = len(raw)
            run_input = parse_run_input(raw)
            prompt = prompt_of(run_input, max_chars=max_chars)
            adapter = AGUIAdapter(runtime.runner.app.agent, run_input, accept=request.headers.get("accept"))
            run = await envelope.open_stream(principal, RunItem(prompt=prompt), record, history=history_of(adapter))
            encoded = adapter.encode_stream(adapter.transform_stream(native_events(run)))
            stream = adapter.build_event_stream()
            return StreamResponse(
                _bytes(encoded), stream=run, media_type=stream.content_type, keepalive=settings.stream_keepalive_seconds
            )

        return await envelope.handle(request, endpoint="ag-ui", permission=Permission.RUN, work=work)

    return [Route(PATH, agui, methods=["POST"])]


async def _bytes(chunks: AsyncIterator[str]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        yield chunk.encode()
