"""The OpenAPI 3.1 document of the HTTP API, generated from the wire models so it cannot drift."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from .schemas import BatchRequest, BatchResponse, ErrorResponse, HealthReport, RunRequest, RunResponse, StoredResult

#: Each model with the side of the wire it is on: request bodies are validated, answers serialised.
MODELS: tuple[tuple[type[BaseModel], JsonSchemaMode], ...] = (
    (RunRequest, "validation"),
    (BatchRequest, "validation"),
    (RunResponse, "serialization"),
    (BatchResponse, "serialization"),
    (StoredResult, "serialization"),
    (ErrorResponse, "serialization"),
    (HealthReport, "serialization"),
)
_REF = "#/components/schemas/{model}"
_ERRORS = {
    "400": "Body is not JSON.",
    "401": "Missing or invalid bearer token.",
    "403": "The caller's roles do not grant this.",
    "404": "No result with that id.",
    "413": "Body too large.",
    "422": "Body does not match the schema (the message names the field), or a usage limit was hit.",
    "429": "Rate limit or queue full; see Retry-After.",
    "502": "The model failed or its output did not match the schema.",
    "503": "Draining or a dependency is down; see Retry-After.",
    "504": "The request timed out.",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _operation(summary: str, *, body: type[BaseModel] | None, ok: type[BaseModel], errors: list[str]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {"200": _json(ok, "Success.")} | {code: _json(ErrorResponse, _ERRORS[code]) for code in errors},
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    return operation


def openapi_document(*, title: str, version: str) -> dict[str, Any]:
    """The whole document; /health, /healthz, /readyz and /metrics need no token."""
    _, schemas = models_json_schema(MODELS, ref_template=_REF, by_alias=True)
    run_errors = ["400", "401", "403", "413", "422", "429", "502", "503", "504"]
    probe = {"summary": "", "security": [], "responses": {"200": {"description": "OK"}, "503": {"description": "No"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "paths": {
            "/v1/run": {"post": _operation("Run the agent once.", body=RunRequest, ok=RunResponse, errors=run_errors)},
            "/v1/run/batch": {
                "post": _operation("Run several prompts.", body=BatchRequest, ok=BatchResponse, errors=run_errors)
            },
            "/v1/results/{run_id}": {
                "get": _operation("Read a stored result.", body=None, ok=StoredResult, errors=["401", "403", "404"])
                | {"parameters": [{"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}]}
            },
            "/health": {
                "get": {
                    "summary": "Health report (503 when unhealthy).",
                    "security": [],
                    "responses": {
                        "200": _json(HealthReport, "Healthy or degraded."),
                        "503": _json(HealthReport, "Unhealthy."),
                    },
                }
            },
            "/healthz": {"get": probe | {"summary": "Liveness: the event loop answers."}},
            "/readyz": {"get": probe | {"summary": "Readiness: services started, not draining."}},
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics.",
                    "security": [],
                    "responses": {"200": {"description": "Text exposition."}},
                }
            },
        },
    }
