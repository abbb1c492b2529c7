"""The OpenAPI 3.1 document of the HTTP API, generated from the wire models so it cannot drift.

The limits the server enforces (longest prompt, items per batch, body size) come from the runtime's
settings and are written into the schemas, so a generated client refuses what the server would.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from agentry_api.health import HealthReport

from .schemas import (
    ApprovalRequest,
    BatchRequest,
    BatchResponse,
    ConversationResponse,
    ErrorResponse,
    RunRequest,
    RunResponse,
    StoredResult,
)
from .settings import RuntimeSettings
from .streaming import AGENTRY_EVENTS

#: Each model with the side of the wire it is on: request bodies are validated, answers serialised.
MODELS: tuple[tuple[type[BaseModel], JsonSchemaMode], ...] = (
    (RunRequest, "validation"),
    (ApprovalRequest, "validation"),
    (BatchRequest, "validation"),
    (RunResponse, "serialization"),
    (BatchResponse, "serialization"),
    (StoredResult, "serialization"),
    (ConversationResponse, "serialization"),
    (ErrorResponse, "serialization"),
    (HealthReport, "serialization"),
    *((model, "serialization") for model in AGENTRY_EVENTS.values() if model is not RunResponse),
)
_REF = "#/components/schemas/{model}"
_ERRORS = {
    "400": "Body is not JSON.",
    "401": "Missing or invalid bearer token; WWW-Authenticate says which.",
    "403": "The caller's roles do not grant this.",
    "404": "No result, or no conversation of the caller's (unknown, expired or another's), with that id.",
    "409": "Another turn of this conversation is running (retry after it), or it waits for no approval; "
    "or a tool needs approval outside a conversation.",
    "413": "Body too large.",
    "422": "Body does not match the schema (the message names the field), or a usage limit was hit.",
    "429": "Rate limit, spent budget (budget_exceeded) or queue full; see Retry-After.",
    "502": "The model or an MCP server failed, or the model's output did not match the schema.",
    "503": "Draining or a dependency is down; see Retry-After.",
    "504": "The request timed out.",
}
_HEADERS = {
    "401": {"WWW-Authenticate": {"description": "The Bearer challenge (RFC 6750).", "required": True}},
    "429": {"Retry-After": {"description": "Seconds to wait before retrying.", "required": True}},
    "503": {"Retry-After": {"description": "Seconds to wait before retrying.", "required": True}},
}
RUN_ERRORS = ["400", "401", "403", "413", "422", "429", "502", "503", "504"]
_TURN_ERRORS = ["400", "401", "403", "404", "409", "413", "422", "429", "502", "503", "504"]
_CONVERSATION_ERRORS = ["401", "403", "404", "429", "503"]
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _error(code: str) -> dict[str, Any]:
    response = _json(ErrorResponse, _ERRORS[code])
    if code in _HEADERS:
        response["headers"] = {
            name: {**header, "schema": {"type": "string"}} for name, header in _HEADERS[code].items()
        }
    return response


def _operation(
    operation_id: str, summary: str, *, body: type[BaseModel] | None, ok: dict[str, Any], errors: list[str]
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "security": _BEARER,
        "responses": {"200": ok} | {code: _error(code) for code in errors},
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    return operation


def _conversation() -> dict[str, Any]:
    """GET and DELETE of one conversation, by its owner only (everyone else gets 404)."""
    parameters = [{"name": "conversation_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    read = _operation(
        "getConversation",
        "Read one's conversation (its stored, redacted history).",
        body=None,
        ok=_json(ConversationResponse, "Success."),
        errors=_CONVERSATION_ERRORS,
    )
    delete = _operation(
        "deleteConversation",
        "Delete one's conversation.",
        body=None,
        ok={"description": "Deleted."},
        errors=_CONVERSATION_ERRORS,
    )
    delete["responses"]["204"] = delete["responses"].pop("200")
    return {"get": read, "delete": delete, "parameters": parameters}


def _approvals(run_ok: dict[str, Any]) -> dict[str, Any]:
    """POST the decisions on a conversation's pending tool calls; the run continues and answers as /v1/run does."""
    parameters = [{"name": "conversation_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    operation = _operation(
        "decideApprovals",
        "Approve or deny the tool calls a conversation's run paused on; the run then continues.",
        body=ApprovalRequest,
        ok=run_ok,
        errors=_TURN_ERRORS,
    )
    return {"post": operation, "parameters": parameters}


def _stream() -> dict[str, Any]:
    """POST /v1/run/stream: refusals as JSON before the stream, then Server-Sent Events (streaming.py).

    Each event is described as OpenAPI 3.2 describes SSE: an object with `event` and `data`, the data a JSON
    text of the event's model.
    """
    events = [
        {
            "type": "object",
            "required": ["event", "data"],
            "properties": {
                "event": {"const": name},
                "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": _ref(model)},
            },
        }
        for name, model in AGENTRY_EVENTS.items()
    ]
    described = ", ".join(f"`{name}` ({model.__name__})" for name, model in AGENTRY_EVENTS.items())
    ok = {
        "description": f"Server-Sent Events: {described}. `final` or `error` ends the stream.",
        "content": {"text/event-stream": {"schema": {"oneOf": events}}},
    }
    return _operation(
        "streamAgent",
        "Run the agent once, streaming its events (a conversation's turn).",
        body=RunRequest,
        ok=ok,
        errors=_TURN_ERRORS,
    )


def _probe(operation_id: str, summary: str, fields: dict[str, str]) -> dict[str, Any]:
    """A probe: 200 or 503 with a small JSON object of `fields` (name: JSON type)."""
    schema = {
        "type": "object",
        "required": list(fields),
        "properties": {name: {"type": kind} for name, kind in fields.items()},
    }
    content = {"application/json": {"schema": schema}}
    return {
        "operationId": operation_id,
        "summary": summary,
        "security": [],
        "responses": {
            "200": {"description": "Yes.", "content": content},
            "503": {"description": "No.", "content": content},
        },
    }


def _schemas(settings: RuntimeSettings) -> dict[str, Any]:
    """The models' schemas with the runtime's limits written in."""
    _, schemas = models_json_schema(MODELS, ref_template=_REF, by_alias=True)
    definitions: dict[str, Any] = schemas.get("$defs", {})
    body_limit = f"The whole body is at most {settings.max_body_bytes} bytes (413 beyond)."
    for model in ("RunRequest", "RunItem"):
        definitions[model]["properties"]["prompt"]["maxLength"] = settings.max_prompt_chars
    definitions["RunRequest"]["description"] += f" {body_limit}"
    definitions["BatchRequest"]["properties"]["items"]["maxItems"] = settings.max_batch_items
    definitions["BatchRequest"]["description"] += f" {body_limit}"
    return definitions


def _metrics(*, need_token: bool) -> dict[str, Any]:
    text = {"text/plain": {"schema": {"type": "string"}}}
    operation: dict[str, Any] = {
        "operationId": "metrics",
        "summary": "Prometheus metrics" + (" (a token with read_metrics)." if need_token else "."),
        "security": _BEARER if need_token else [],
        "responses": {"200": {"description": "Text exposition.", "content": text}},
    }
    if need_token:
        operation["responses"] |= {code: _error(code) for code in ("401", "403")}
    return operation


def event_stream_operation(
    operation_id: str, summary: str, *, request: dict[str, Any], events: str, errors: list[str]
) -> dict[str, Any]:
    """A protocol's streaming endpoint whose bodies are the protocol's own (described by `request` and `events`).

    Its refusals before the stream are Agentry's JSON errors like every other endpoint's.
    """
    event = {"type": "object", "required": ["data"], "properties": {"data": {"type": "string"}}}
    return {
        "operationId": operation_id,
        "summary": summary,
        "security": _BEARER,
        "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
        "responses": {"200": {"description": events, "content": {"text/event-stream": {"schema": event}}}}
        | {code: _error(code) for code in errors},
    }


def openapi_document(
    *,
    title: str,
    version: str,
    settings: RuntimeSettings,
    metrics_need_token: bool = False,
    protocol_paths: dict[str, Any] | None = None,
    protocol_schemas: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole document; /health, /healthz and /readyz need no token, /metrics only when configured.

    `protocol_paths` are the paths of the protocols the agent serves (spec.protocols), from their modules, and
    `protocol_schemas` the component schemas those paths refer to.
    """
    run_ok = _json(RunResponse, "Success.") | {
        "links": {
            "GetResult": {
                "operationId": "getResult",
                "parameters": {"run_id": "$response.body#/runId"},
                "description": "The stored, anonymised result of this run.",
            },
            "GetConversation": {
                "operationId": "getConversation",
                "parameters": {"conversation_id": "$response.body#/conversationId"},
                "description": "The conversation this run was a turn of.",
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "components": {
            "schemas": _schemas(settings) | (protocol_schemas or {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "paths": {
            "/v1/run": {
                "post": _operation(
                    "runAgent",
                    "Run the agent once (a conversation's turn).",
                    body=RunRequest,
                    ok=run_ok,
                    errors=_TURN_ERRORS,
                )
            },
            "/v1/run/stream": {"post": _stream()},
            "/v1/conversations/{conversation_id}": _conversation(),
            "/v1/conversations/{conversation_id}/approvals": _approvals(_json(RunResponse, "The continued run.")),
            "/v1/run/batch": {
                "post": _operation(
                    "runBatch",
                    "Run several prompts.",
                    body=BatchRequest,
                    ok=_json(BatchResponse, "Success."),
                    errors=RUN_ERRORS,
                )
            },
            "/v1/results/{run_id}": {
                "get": _operation(
                    "getResult",
                    "Read a stored result.",
                    body=None,
                    ok=_json(StoredResult, "Success."),
                    errors=["401", "403", "404", "429", "503"],
                )
                | {"parameters": [{"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}]}
            },
            "/health": {
                "get": {
                    "operationId": "health",
                    "summary": "Health report (503 when unhealthy).",
                    "security": [],
                    "responses": {
                        "200": _json(HealthReport, "Healthy or degraded."),
                        "503": _json(HealthReport, "Unhealthy."),
                    },
                }
            },
            "/healthz": {
                "get": _probe(
                    "liveness", "Liveness: the event loop answers.", {"alive": "boolean", "loopLagSeconds": "number"}
                )
            },
            "/readyz": {
                "get": _probe(
                    "readiness",
                    "Readiness: services started, not draining.",
                    {"ready": "boolean", "draining": "boolean", "servicesStarted": "boolean"},
                )
            },
            "/metrics": {"get": _metrics(need_token=metrics_need_token)},
        }
        | (protocol_paths or {}),
    }
