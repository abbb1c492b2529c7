"""The OpenAI-compatible endpoints' wire: OpenAI's request, answer, chunk and error shapes, and their OpenAPI.

Field names are OpenAI's (snake_case); unknown request fields are kept, not refused (openai_api.py decides what an
agent refuses), since OpenAI adds fields faster than any server can follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import models_json_schema

from .errors import ApiError
from .schemas import Usage

OWNED_BY = "agentry"


class OpenAIWire(BaseModel):
    """snake_case as OpenAI has it; unknown fields kept, since OpenAI adds fields faster than any server."""

    model_config = ConfigDict(extra="allow", frozen=True)


class TextContent(OpenAIWire):
    """A text part of a message's content (the only kind an agent takes)."""

    type: Literal["text"]
    text: str


class ChatMessage(OpenAIWire):
    """One message of the conversation so far."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextContent] | None = None
    name: str | None = None
    tool_calls: list[Any] | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts_only(cls, value: Any) -> Any:
        """Name the part that is not text, instead of pydantic's error for each member of the union."""
        if isinstance(value, list):
            for index, part in enumerate(value):
                kind = part.get("type") if isinstance(part, dict) else None
                if kind != "text":
                    raise ValueError(f"part [{index}] is {kind!r}: only text parts are accepted")
        return value


class StreamOptions(OpenAIWire):
    """Options of a streamed answer."""

    include_usage: bool = False


class ResponseFormat(OpenAIWire):
    """The answer's format: `text`, or JSON (`json_object`, `json_schema`) from an agent with an output schema."""

    type: Literal["text", "json_object", "json_schema"]


class ChatCompletionRequest(OpenAIWire):
    """POST /v1/chat/completions; the fields an agent uses or refuses, every other one accepted."""

    model: str = Field(description="The agent's name (GET /v1/models lists it).")
    messages: list[ChatMessage] = Field(
        min_length=1, description="The conversation; the last message is the user's, with text: the prompt."
    )
    stream: bool = Field(False, description="Answer as server-sent `chat.completion.chunk` events.")
    stream_options: StreamOptions | None = None
    user: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    n: int | None = Field(None, ge=1, description="One choice only.", json_schema_extra={"maximum": 1})
    response_format: ResponseFormat | None = None


class AssistantMessage(OpenAIWire):
    """The agent's answer."""

    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(OpenAIWire):
    """The one choice of an answer."""

    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class CompletionUsage(OpenAIWire):
    """The run's tokens, as OpenAI counts them."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, usage: Usage) -> CompletionUsage:
        """A run's usage in OpenAI's words."""
        total = usage.input_tokens + usage.output_tokens
        return cls(prompt_tokens=usage.input_tokens, completion_tokens=usage.output_tokens, total_tokens=total)


class ChatCompletion(OpenAIWire):
    """The answer of POST /v1/chat/completions."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    system_fingerprint: None = None


class ChunkDelta(OpenAIWire):
    """What one chunk adds to the answer: the role first, then text."""

    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(OpenAIWire):
    """The one choice of a chunk; `finish_reason` is set on the last chunk with a choice."""

    index: int = 0
    delta: ChunkDelta
    finish_reason: Literal["stop"] | None = None
    logprobs: None = None


class ChatCompletionChunk(OpenAIWire):
    """One `data:` event of a streamed answer; the usage chunk (stream_options.include_usage) has no choice."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None
    system_fingerprint: None = None


class ModelCard(OpenAIWire):
    """The agent as a model."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(OpenAIWire):
    """GET /v1/models: the one model, the agent."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class OpenAIErrorBody(OpenAIWire):
    """OpenAI's error: `code` is Agentry's stable word (`model_not_found`, `rate_limit_exceeded`, ...)."""

    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorResponse(OpenAIWire):
    """Every error answer of the OpenAI-compatible endpoints."""

    error: OpenAIErrorBody


# --- errors ----------------------------------------------------------------------------------------

#: OpenAI's error `type` for a status; other 4xx are `invalid_request_error`, 5xx `server_error`.
_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}
#: OpenAI's `code` where it has its own word for one of Agentry's kinds.
_CODES = {
    "rate_limited": "rate_limit_exceeded",
    "budget_exceeded": "insufficient_quota",
    "unauthenticated": "invalid_api_key",
}


def openai_error(error: ApiError) -> tuple[int, OpenAIErrorBody]:
    """The status and OpenAI's error body for an ApiError.

    A request that does not fit the schema is 400 here (/v1 says 422): OpenAI's API and the tools built on
    it expect BadRequestError. Its field (every `invalid_request` message starts with it) becomes `param`.
    """
    status, param = error.status, None
    if error.kind == "invalid_request":
        status = 400
        field, separator, _ = error.message.partition(": ")
        param = field if separator and field != "(root)" else None
    elif error.kind == "model_not_found":
        param = "model"
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return status, OpenAIErrorBody(
        message=error.message, type=kind, param=param, code=_CODES.get(error.kind, error.kind)
    )


# --- OpenAPI ---------------------------------------------------------------------------------------

_REF = "#/components/schemas/{model}"
_ERRORS = {
    "400": "Body is not JSON or does not fit (`param` names the field), or asks for what an agent does not do.",
    "401": "Missing or invalid bearer token (the API key); WWW-Authenticate says which.",
    "403": "The caller's roles do not grant running the agent.",
    "404": "No such model: the only one is the agent's name.",
    "413": "Body too large.",
    "422": "A usage limit of the agent was hit.",
    "429": "Rate limit, spent budget (insufficient_quota) or queue full; see Retry-After.",
    "502": "The model or an MCP server failed, or the model's output did not match the schema.",
    "503": "Draining or a dependency is down; see Retry-After.",
    "504": "The request timed out.",
}
#: One event of a streamed answer (`stream: true`): a chunk, then `[DONE]`; or an error event ending the stream.
_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "anyOf": [
                {"const": "[DONE]"},
                {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": {
                        "anyOf": [
                            {"$ref": _REF.format(model="ChatCompletionChunk")},
                            {"$ref": _REF.format(model="OpenAIErrorResponse")},
                        ]
                    },
                },
            ]
        }
    },
}
_RETRY = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}}}


def _content(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}},
    }


def _operation(operation_id: str, summary: str, ok: type[BaseModel], errors: Sequence[str]) -> dict[str, Any]:
    responses = {"200": _content(ok, "Success.")}
    for code in errors:
        responses[code] = _content(OpenAIErrorResponse, _ERRORS[code])
        if code in ("429", "503"):
            responses[code]["headers"] = _RETRY
    return {"operationId": operation_id, "summary": summary, "security": [{"bearer": []}], "responses": responses}


def _document_what_is_served(definitions: dict[str, Any], *, model: str, structured: bool) -> None:
    """Narrow the request's schema to what this agent serves.

    That is: its name as the model, no `tool` message, no assistant `tool_calls`, a message's content never null,
    JSON `response_format` only with an output schema. The models accept more, only to refuse it with a message
    naming the field (openai_api.py); a generated client refuses it before sending. What JSON Schema cannot say
    (the last message is the user's, with a prompt) stays in the descriptions.
    """
    definitions["ChatCompletionRequest"]["properties"]["model"]["enum"] = [model]
    message = definitions["ChatMessage"]
    message["properties"]["role"]["enum"] = ["system", "developer", "user", "assistant"]
    content = message["properties"]["content"]
    content["anyOf"] = [kind for kind in content["anyOf"] if kind.get("type") != "null"]
    content.pop("default", None)
    message["required"] = ["role", "content"]
    message["properties"]["tool_calls"] = {"type": "array", "maxItems": 0, "description": "Refused: client tools."}
    if not structured:
        definitions["ResponseFormat"]["properties"]["type"]["enum"] = ["text"]


def openapi_part(*, model: str, structured: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (paths, component schemas) of these endpoints; `model` is the agent's name, the one model id.

    `structured`: the agent has an output schema, so it serves JSON `response_format`s.
    """
    _, schemas = models_json_schema(
        [
            (ChatCompletionRequest, "validation"),
            (ChatCompletion, "serialization"),
            (ChatCompletionChunk, "serialization"),
            (ModelList, "serialization"),
            (ModelCard, "serialization"),
            (OpenAIErrorResponse, "serialization"),
        ],
        ref_template=_REF,
    )
    definitions: dict[str, Any] = schemas.get("$defs", {})
    _document_what_is_served(definitions, model=model, structured=structured)
    chat = _operation(
        "createChatCompletion",
        "OpenAI-compatible chat completion: one run of the agent.",
        ChatCompletion,
        ["400", "401", "403", "404", "413", "422", "429", "502", "503", "504"],
    )
    chat["responses"]["200"]["content"]["text/event-stream"] = {"schema": _EVENT}
    chat["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model="ChatCompletionRequest")}}},
    }
    retrieve = _operation(
        "retrieveModel", "The agent as a model (404 for any other id).", ModelCard, ["401", "403", "404", "429", "503"]
    )
    retrieve["parameters"] = [
        {"name": "model", "in": "path", "required": True, "schema": {"type": "string", "enum": [model]}}
    ]
    paths = {
        "/v1/chat/completions": {"post": chat},
        "/v1/models": {
            "get": _operation("listModels", "The one model: the agent.", ModelList, ["401", "403", "429", "503"])
        },
        "/v1/models/{model}": {"get": retrieve},
    }
    return paths, definitions
