"""OpenAI-compatible chat completions and models (spec.protocols `openai`), inside Agentry's request envelope.

The agent is the model: its name (metadata.name) is the only model id, and any other is OpenAI's 404
`model_not_found`. A request maps onto one run of the agent:

- the last message must be the user's: it is the prompt; every message before it is the run's history, sent
  by the client and never stored (the protocol is stateless). User messages become user prompts, assistant
  messages the model's earlier answers.
- system and developer messages are added to the agent's own instructions, never instead of them: the model
  gets spec.agent.instructions first, then the client's system messages where the client put them.
- the answer is one `chat.completion` choice; an agent with spec.agent.outputSchema answers its object as JSON
  text (`response_format` `json_object` or `json_schema` asks for exactly that, and is refused by an agent
  without a schema: it answers text). The id is `chatcmpl-<run id>`, so /v1/results/{run id} finds it.
- sampling fields (`temperature`, `max_tokens`, `max_completion_tokens`, `top_p`, `stop`, `seed`, ...) and
  `user` are accepted so that SDKs and tools work unchanged, and not applied: an agent's sampling is its
  owner's (spec.agent.modelSettings), and the caller is the token's subject.
- refused with 400 naming the field: client tools (`tools`, `tool_choice`, `functions`, `function_call`;
  the agent calls its own tools), `tool` messages and assistant `tool_calls`, `n` > 1, `logprobs`, audio,
  content parts other than text. Unknown fields are accepted, as OpenAI's newer fields keep coming.

Every error leaves in OpenAI's shape `{"error": {"message", "type", "param", "code"}}` with Agentry's status,
so the SDK raises its matching exception (AuthenticationError, RateLimitError, BadRequestError, ...).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import models_json_schema
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelRequestPart,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    UserPromptPart,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .bodies import parse_model, read_body
from .envelope import Envelope, RequestRecord, Work
from .errors import ApiError
from .schemas import RunItem, RunResponse
from .security.auth import Principal
from .security.permissions import Permission

#: Who owns the models /v1/models lists (OpenAI's `owned_by`).
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
    messages: list[ChatMessage] = Field(min_length=1, description="The conversation; the last one is the user's.")
    stream: bool = Field(False, json_schema_extra={"const": False})
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


class ChatCompletion(OpenAIWire):
    """The answer of POST /v1/chat/completions."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
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
_CODES = {"rate_limited": "rate_limit_exceeded", "unauthenticated": "invalid_api_key"}


def invalid(param: str, message: str) -> ApiError:
    """A 400 naming the field; every `invalid_request` message starts with its field, as in /v1's errors."""
    return ApiError(400, "invalid_request", f"{param}: {message}")


def error_response(error: ApiError) -> Response:
    """An ApiError in OpenAI's shape, its headers kept (WWW-Authenticate, Retry-After).

    A request that does not fit the schema is 400 here (/v1 says 422): OpenAI's API and the tools built on
    it expect BadRequestError. Its field becomes `param`.
    """
    status, param = error.status, None
    if error.kind == "invalid_request":
        status = 400
        field, separator, _ = error.message.partition(": ")
        param = field if separator and field != "(root)" else None
    elif error.kind == "model_not_found":
        param = "model"
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    body = OpenAIErrorBody(message=error.message, type=kind, param=param, code=_CODES.get(error.kind, error.kind))
    return JSONResponse({"error": body.model_dump()}, status_code=status, headers=error.response_headers())


def model_not_found(model: str) -> ApiError:
    """OpenAI's answer for a model one may not use."""
    return ApiError(404, "model_not_found", f"The model `{model}` does not exist or you do not have access to it.")


# --- the request as a run --------------------------------------------------------------------------

#: Fields that ask for what an agent does not do, with why; refused when set to anything but "off".
_REFUSED = {
    "tools": "client-side tools are not supported: the agent calls its own tools",
    "tool_choice": "client-side tools are not supported: the agent calls its own tools",
    "functions": "client-side functions are not supported: the agent calls its own tools",
    "function_call": "client-side functions are not supported: the agent calls its own tools",
    "logprobs": "log probabilities are not available from an agent",
    "top_logprobs": "log probabilities are not available from an agent",
    "audio": "an agent answers text only",
}
#: Values of the refused fields that ask for nothing.
_OFF: tuple[Any, ...] = (None, False, "none", "auto", [], {})


def refusal(request: ChatCompletionRequest, *, structured: bool) -> ApiError | None:
    """The 400 for a field asking for what the agent does not do, or None."""
    if request.stream:
        return invalid("stream", "streaming is not supported yet")
    if request.n is not None and request.n > 1:
        return invalid("n", "an agent gives one answer (n=1)")
    extra = request.model_extra or {}
    for name, why in _REFUSED.items():
        if extra.get(name) not in _OFF:
            return invalid(name, why)
    if "audio" in (extra.get("modalities") or ()):
        return invalid("modalities", "an agent answers text only")
    wants_json = request.response_format is not None and request.response_format.type != "text"
    if wants_json and not structured:
        return invalid("response_format.type", "this agent answers text (it has no output schema)")
    return None


def conversation(messages: Sequence[ChatMessage]) -> tuple[str, list[ModelMessage]]:
    """The prompt (the last message, the user's) and the history before it, as pydantic-ai messages."""
    last = len(messages) - 1
    if messages[last].role != "user":
        raise invalid(f"messages[{last}].role", "the last message must be the user's: it is the prompt")
    prompt = _text(messages[last], last)
    if not prompt.strip():
        raise invalid(f"messages[{last}].content", "the prompt is empty")
    history: list[ModelMessage] = []
    for index, message in enumerate(messages[:last]):
        _append(history, message, index)
    return prompt, history


def _append(history: list[ModelMessage], message: ChatMessage, index: int) -> None:
    """Add one earlier message: consecutive system and user messages make one request, as the model sees them."""
    if message.role == "tool":
        raise invalid(f"messages[{index}].role", "'tool' answers a client-side tool call, which is not supported")
    if message.tool_calls:
        raise invalid(f"messages[{index}].tool_calls", "client-side tools are not supported")
    text = _text(message, index)
    if message.role == "assistant":
        history.append(ModelResponse(parts=[TextPart(text)]))
        return
    part: ModelRequestPart = UserPromptPart(text) if message.role == "user" else SystemPromptPart(text)
    if history and isinstance(history[-1], ModelRequest):
        history[-1] = ModelRequest(parts=[*history[-1].parts, part])
    else:
        history.append(ModelRequest(parts=[part]))


def _text(message: ChatMessage, index: int) -> str:
    """A message's text: its string, or its text parts joined by newlines."""
    if message.content is None:
        raise invalid(f"messages[{index}].content", "Field required")
    if isinstance(message.content, str):
        return message.content
    return "\n".join(part.text for part in message.content)


def completion(result: RunResponse, *, model: str) -> ChatCompletion:
    """The run's answer as OpenAI's: a structured output as its JSON text."""
    output = result.output
    content = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
    usage = result.usage
    return ChatCompletion(
        id=f"chatcmpl-{result.run_id}",
        created=int(time.time()),
        model=model,
        choices=[Choice(message=AssistantMessage(content=content))],
        usage=CompletionUsage(
            prompt_tokens=usage.input_tokens,
            completion_tokens=usage.output_tokens,
            total_tokens=usage.input_tokens + usage.output_tokens,
        ),
    )


# --- routes ----------------------------------------------------------------------------------------


def _json(model: BaseModel) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"))


def openai_routes(envelope: Envelope) -> list[Route]:
    """POST /v1/chat/completions, GET /v1/models and /v1/models/{model}, bound to one runtime's envelope."""
    runtime = envelope.runtime
    name = runtime.config.name
    structured = runtime.config.spec.agent.output_schema is not None
    card = ModelCard(id=name, created=int(time.time()), owned_by=OWNED_BY)
    settings = runtime.settings

    async def chat(request: Request) -> Response:
        async def work(principal: Principal, record: RequestRecord) -> Response:
            raw = await read_body(request, max_bytes=settings.max_body_bytes)
            record.request_bytes = len(raw)
            body = parse_model(raw, ChatCompletionRequest)
            if body.model != name:
                raise model_not_found(body.model)
            refused = refusal(body, structured=structured)
            if refused is not None:
                raise refused
            prompt, history = conversation(body.messages)
            if len(prompt) > settings.max_prompt_chars:
                field = f"messages[{len(body.messages) - 1}].content"
                raise invalid(field, f"String should have at most {settings.max_prompt_chars} characters")
            # A RunItem, not a RunRequest: a stateless call is no conversation's turn, so nothing is stored.
            result = await envelope.run(principal, RunItem(prompt=prompt), record, history=history)
            return _json(completion(result, model=name))

        return await _handle(request, "chat_completions", work)

    async def models(request: Request) -> Response:
        async def work(principal: Principal, record: RequestRecord) -> Response:
            return _json(ModelList(data=[card]))

        return await _handle(request, "models", work)

    async def model(request: Request) -> Response:
        async def work(principal: Principal, record: RequestRecord) -> Response:
            asked = str(request.path_params["model"])
            if asked != name:
                raise model_not_found(asked)
            return _json(card)

        return await _handle(request, "models", work)

    async def _handle(request: Request, endpoint: str, work: Work) -> Response:
        return await envelope.handle(
            request, endpoint=endpoint, permission=Permission.RUN, work=work, error_response=error_response
        )

    return [
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{model}", model, methods=["GET"]),
    ]


# --- OpenAPI ---------------------------------------------------------------------------------------

_REF = "#/components/schemas/{model}"
_ERRORS = {
    "400": "Body is not JSON or does not fit (`param` names the field), or asks for what an agent does not do.",
    "401": "Missing or invalid bearer token (the API key); WWW-Authenticate says which.",
    "403": "The caller's roles do not grant running the agent.",
    "404": "No such model: the only one is the agent's name.",
    "413": "Body too large.",
    "422": "A usage limit of the agent was hit.",
    "429": "Rate limit or queue full; see Retry-After.",
    "502": "The model or an MCP server failed, or the model's output did not match the schema.",
    "503": "Draining or a dependency is down; see Retry-After.",
    "504": "The request timed out.",
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


def openapi_part(*, model: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (paths, component schemas) of these endpoints; `model` is the one model id the schema accepts."""
    _, schemas = models_json_schema(
        [
            (ChatCompletionRequest, "validation"),
            (ChatCompletion, "serialization"),
            (ModelList, "serialization"),
            (ModelCard, "serialization"),
            (OpenAIErrorResponse, "serialization"),
        ],
        ref_template=_REF,
    )
    definitions: dict[str, Any] = schemas.get("$defs", {})
    definitions["ChatCompletionRequest"]["properties"]["model"]["enum"] = [model]
    chat = _operation(
        "createChatCompletion",
        "OpenAI-compatible chat completion: one run of the agent.",
        ChatCompletion,
        ["400", "401", "403", "404", "413", "422", "429", "502", "503", "504"],
    )
    chat["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model="ChatCompletionRequest")}}},
    }
    retrieve = _operation(
        "retrieveModel", "The agent as a model (404 for any other id).", ModelCard, ["401", "403", "404", "429", "503"]
    )
    retrieve["parameters"] = [{"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}]
    paths = {
        "/v1/chat/completions": {"post": chat},
        "/v1/models": {
            "get": _operation("listModels", "The one model: the agent.", ModelList, ["401", "403", "429", "503"])
        },
        "/v1/models/{model}": {"get": retrieve},
    }
    return paths, definitions
