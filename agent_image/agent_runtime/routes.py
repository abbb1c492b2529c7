"""The /v1 endpoints: run (streamed or not), batch, stored results and conversations, each inside the envelope."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import results
from .bodies import parse_model, read_body
from .envelope import Envelope, RequestRecord, StreamRun
from .errors import ApiError
from .schemas import (
    ApprovalRequest,
    BatchRequest,
    BatchResponse,
    ConversationResponse,
    RunItem,
    RunRequest,
    StreamStart,
)
from .security.auth import Principal
from .security.permissions import Permission
from .streaming import StreamResponse, agentry_event, sse


def _json(model: BaseModel) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json", by_alias=True))


def check_prompt(request: RunItem, *, field: str, max_chars: int) -> None:
    """Refuse a prompt longer than the runtime's limit (the one the OpenAPI document states) with 422."""
    if len(request.prompt) > max_chars:
        raise ApiError(422, "invalid_request", f"{field}: String should have at most {max_chars} characters")


def v1_routes(envelope: Envelope) -> list[Route]:
    """The API routes, bound to one runtime's envelope."""
    runtime = envelope.runtime
    max_bytes = runtime.settings.max_body_bytes
    max_items = runtime.settings.max_batch_items
    max_chars = runtime.settings.max_prompt_chars
    keepalive = runtime.settings.stream_keepalive_seconds

    async def run(request: Request) -> Response:
        async def work(principal: Principal, record: RequestRecord) -> Response:
            raw = await read_body(request, max_bytes=max_bytes)
            record.request_bytes = len(raw)
            body = parse_model(raw, RunRequest)
            check_prompt(body, field="prompt", max_chars=max_chars)
            result = await envelope.run(principal, body, record)
            return _json(result)

        return await envelope.handle(request, endpoint="run", permission=Permission.RUN, work=work)

    async def stream(request: Request) -> Response:
        async def work(principal: Principal, record: RequestRecord) -> Response:
            raw = await read_body(request, max_bytes=max_bytes)
            record.request_bytes = len(raw)
            body = parse_model(raw, RunRequest)
            check_prompt(body, field="prompt", max_chars=max_chars)
            run = await envelope.open_stream(principal, body, record)
            return StreamResponse(_agentry_events(run), stream=run, keepalive=keepalive)

        return await envelope.handle(request, endpoint="stream", permission=Permission.RUN, work=work)

    async def batch(request: Request) -> Response:
        async def work(principal: Principal, record: RequestRecord) -> Response:
            raw = await read_body(request, max_bytes=max_bytes)
            record.request_bytes = len(raw)
            body = parse_model(raw, BatchRequest)
            if len(body.items) > max_items:
                raise ApiError(422, "invalid_request", f"items: at most {max_items} items per batch")
            for index, item in enumerate(body.items):
                check_prompt(item, field=f"items[{index}].prompt", max_chars=max_chars)
            items = await envelope.run_batch(principal, body.items, record)
            failed = sum(1 for item in items if not item.ok)
            return _json(BatchResponse(items=items, succeeded=len(items) - failed, failed=failed))

        return await envelope.handle(request, endpoint="batch", permission=Permission.RUN, work=work)

    async def result(request: Request) -> Response:
        async def work(principal: Principal, record: RequestRecord) -> Response:
            return JSONResponse(await results.load(runtime.services, str(request.path_params["run_id"])))

        return await envelope.handle(request, endpoint="results", permission=Permission.READ_RESULTS, work=work)

    return [
        Route("/v1/run", run, methods=["POST"]),
        Route("/v1/run/stream", stream, methods=["POST"]),
        Route("/v1/run/batch", batch, methods=["POST"]),
        Route("/v1/results/{run_id}", result, methods=["GET"]),
        *conversation_routes(envelope),
    ]


def conversation_routes(envelope: Envelope) -> list[Route]:
    """A conversation's history (read, delete) and the decisions on the tool calls its run paused on."""
    runtime = envelope.runtime
    max_bytes = runtime.settings.max_body_bytes

    async def conversation(request: Request) -> Response:
        conversation_id = str(request.path_params["conversation_id"])

        async def read(principal: Principal, record: RequestRecord) -> Response:
            messages = await runtime.conversations.read(principal.subject, conversation_id)
            return _json(ConversationResponse(conversation_id=conversation_id, messages=messages))

        async def delete(principal: Principal, record: RequestRecord) -> Response:
            await runtime.conversations.delete(principal.subject, conversation_id)
            return Response(status_code=204)

        work = delete if request.method == "DELETE" else read
        return await envelope.handle(request, endpoint="conversations", permission=Permission.RUN, work=work)

    async def approvals(request: Request) -> Response:
        conversation_id = str(request.path_params["conversation_id"])

        async def work(principal: Principal, record: RequestRecord) -> Response:
            raw = await read_body(request, max_bytes=max_bytes)
            record.request_bytes = len(raw)
            body = parse_model(raw, ApprovalRequest)
            return _json(await envelope.resume(principal, conversation_id, body, record))

        return await envelope.handle(request, endpoint="approvals", permission=Permission.RUN, work=work)

    return [
        Route("/v1/conversations/{conversation_id}", conversation, methods=["GET", "DELETE"]),
        Route("/v1/conversations/{conversation_id}/approvals", approvals, methods=["POST"]),
    ]


async def _agentry_events(run: StreamRun) -> AsyncIterator[bytes]:
    """`/v1/run/stream`'s events (streaming.py): `start`, then the run's own, ending in `final` or `error`."""
    start = StreamStart(run_id=run.run_id, conversation_id=run.conversation_id)
    yield sse("start", start.model_dump(mode="json", by_alias=True))
    async for event in run.events():
        chunk = agentry_event(event)
        if chunk is not None:
            yield chunk
