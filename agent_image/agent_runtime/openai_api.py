"""OpenAI-compatible chat completions and models (spec.protocols `openai`), inside Agentry's request envelope.

The agent is the model: its name (metadata.name) is the only model id, and any other is OpenAI's 404
`model_not_found`. A request maps onto one run of the agent:

- the last message must be the user's: it is the prompt; every message before it is the run's history, sent
  by the client and never stored (the protocol is stateless). User messages become user prompts, assistant
  messages the model's earlier answers.
- system and developer messages are added to the agent's own instructions, never instead of them: the model
  gets spec.agent.instructions (or a code agent's `instructions`) first, then the client's system messages
  where the client put them (pydantic-ai frames one after the start as `<system>` text where the provider has
  no system message there). A code agent's `system_prompt`, unlike its `instructions`, is sent by pydantic-ai
  only on a run without history, so not when the client sends one.
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
from typing import Any

from pydantic import BaseModel
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
from .openai_stream import chunks
from .openai_wire import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    CompletionUsage,
    ModelCard,
    ModelList,
    openai_error,
)
from .schemas import RunItem, RunResponse
from .security.auth import Principal
from .security.permissions import Permission
from .streaming import StreamResponse

#: Who owns the models /v1/models lists (OpenAI's `owned_by`).
OWNED_BY = "agentry"


def invalid(param: str, message: str) -> ApiError:
    """A 400 naming the field; every `invalid_request` message starts with its field, as in /v1's errors."""
    return ApiError(400, "invalid_request", f"{param}: {message}")


def error_response(error: ApiError) -> Response:
    """An ApiError in OpenAI's shape, its headers kept (WWW-Authenticate, Retry-After)."""
    status, body = openai_error(error)
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


def run_of(request: ChatCompletionRequest, *, max_chars: int) -> tuple[RunItem, list[ModelMessage]]:
    """The run a request asks for: its prompt and the client's history.

    A RunItem, not a RunRequest: a stateless call is no conversation's turn, so the envelope stores no history.
    """
    prompt, history = conversation(request.messages)
    if len(prompt) > max_chars:
        field = f"messages[{len(request.messages) - 1}].content"
        raise invalid(field, f"String should have at most {max_chars} characters")
    return RunItem(prompt=prompt), history


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
    return ChatCompletion(
        id=f"chatcmpl-{result.run_id}",
        created=int(time.time()),
        model=model,
        choices=[Choice(message=AssistantMessage(content=content))],
        usage=CompletionUsage.of(result.usage),
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
            prompt, history = run_of(body, max_chars=settings.max_prompt_chars)
            if body.stream:
                run = await envelope.open_stream(principal, prompt, record, history=history)
                usage = body.stream_options is not None and body.stream_options.include_usage
                return StreamResponse(chunks(run, model=name, include_usage=usage), stream=run)
            result = await envelope.run(principal, prompt, record, history=history)
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
