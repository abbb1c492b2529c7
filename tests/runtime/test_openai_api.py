"""The OpenAI-compatible endpoints, driven by the real `openai` SDK against the real runtime server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, SystemPromptPart, TextPart
from pydantic_ai.models import override_allow_model_requests
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from agent_runtime.runtime import Runtime
from agent_runtime.settings import RuntimeSettings

from .harness import Backend, auth, serving, stored_audit, token, wait_for_load
from .models import echo_model, output_call, streaming_words, structured_model, user_prompts

#: The agent's name in the harness, hence the one model id.
MODEL = "agent"
HELLO: list[Any] = [{"role": "user", "content": "hello"}]


def client(url: str, api_key: str | None = None) -> AsyncOpenAI:
    """The SDK on the runtime, the JWT as the API key, no retries (a test sees every answer)."""
    return AsyncOpenAI(base_url=f"{url}/v1", api_key=api_key or token(), max_retries=0)


@pytest.fixture
def echo_url(runtime_backend: Backend) -> Iterator[str]:
    with serving(runtime_backend.runtime(model=echo_model())) as url:
        yield url


@pytest.fixture
async def sdk(echo_url: str) -> AsyncIterator[AsyncOpenAI]:
    async with client(echo_url) as c:
        yield c


def seen_model() -> FunctionModel:
    """Answers with what it was shown: instructions, system prompts, user prompts and earlier answers, as JSON."""

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        system = [
            p.content
            for m in messages
            if isinstance(m, ModelRequest)
            for p in m.parts
            if isinstance(p, SystemPromptPart)
        ]
        answers = [
            p.content for m in messages if isinstance(m, ModelResponse) for p in m.parts if isinstance(p, TextPart)
        ]
        seen = {
            "messages": len(messages),
            "instructions": info.instructions,
            "system": system,
            "user": user_prompts(messages),
            "assistant": answers,
        }
        return ModelResponse(parts=[TextPart(json.dumps(seen))])

    return FunctionModel(answer)


def streaming_model(*pieces: str, fail: bool = False) -> FunctionModel:
    """Streams `pieces` as text deltas, and then raises when `fail` (a model that breaks mid-answer).

    Not streamed, it answers the pieces joined.
    """

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        for piece in pieces:
            yield piece
        if fail:
            raise RuntimeError("scripted failure mid-stream")

    def whole(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("".join(pieces))])

    return FunctionModel(whole, stream_function=stream)


async def test_a_completion_answers_as_openai_does_and_its_id_is_the_run(sdk: AsyncOpenAI, echo_url: str) -> None:
    answer = await sdk.chat.completions.create(model=MODEL, messages=HELLO, temperature=0.2, user="u-1", seed=3)
    assert answer.object == "chat.completion"
    assert answer.model == MODEL
    [choice] = answer.choices
    assert (choice.index, choice.finish_reason, choice.message.role) == (0, "stop", "assistant")
    assert choice.message.content == "echo: hello"
    assert answer.usage is not None
    assert answer.usage.prompt_tokens > 0
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    run_id = answer.id.removeprefix("chatcmpl-")
    stored = httpx.get(f"{echo_url}/v1/results/{run_id}", headers=auth())
    assert stored.status_code == 200
    assert stored.json()["prompt"] == "hello"


async def test_the_history_reaches_the_agent_after_its_own_instructions_and_is_never_stored(
    runtime_backend: Backend,
) -> None:
    runtime = runtime_backend.runtime(model=seen_model())
    messages: list[Any] = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "part"}]},
        {"role": "assistant", "content": "an answer"},
        {"role": "developer", "content": "Be kind."},
        {"role": "user", "content": "second"},
    ]
    with serving(runtime) as url:
        async with client(url) as sdk:
            answer = await sdk.chat.completions.create(model=MODEL, messages=messages)
            alone = await sdk.chat.completions.create(model=MODEL, messages=HELLO)
    seen = json.loads(answer.choices[0].message.content or "")
    # A system message after the start goes to the model in the application's voice: pydantic-ai frames the
    # part as `<system>` text where the provider has no system message there, as FunctionModel has not.
    assert seen == {
        "messages": 3,  # system + user, the assistant's answer, developer + the prompt
        "instructions": "You are a test agent.",
        "system": ["Answer briefly."],
        "user": ["first\npart", "<system>Be kind.</system>", "second"],
        "assistant": ["an answer"],
    }
    assert json.loads(alone.choices[0].message.content or "")["messages"] == 1
    audited = [r for r in await stored_audit(runtime, runtime_backend) if r["endpoint"] == "chat_completions"]
    assert len(audited) == 2
    assert all("conversation_id" not in r for r in audited), "a stateless call is no conversation's turn"


async def test_the_only_model_is_the_agent(sdk: AsyncOpenAI) -> None:
    listed = await sdk.models.list()
    assert [m.id for m in listed.data] == [MODEL]
    assert (await sdk.models.retrieve(MODEL)).owned_by == "agentry"
    with pytest.raises(openai.NotFoundError) as wrong:
        await sdk.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert (wrong.value.code, wrong.value.param, wrong.value.type) == (
        "model_not_found",
        "model",
        "invalid_request_error",
    )
    assert "gpt-4o" in wrong.value.message
    with pytest.raises(openai.NotFoundError) as unknown:
        await sdk.models.retrieve("gpt-4o")
    assert unknown.value.code == "model_not_found"


async def test_an_invalid_token_is_the_sdks_authentication_error(echo_url: str) -> None:
    async with client(echo_url, api_key="not-a-jwt") as sdk:
        with pytest.raises(openai.AuthenticationError) as refused:
            await sdk.chat.completions.create(model=MODEL, messages=HELLO)
        with pytest.raises(openai.AuthenticationError):
            await sdk.models.list()
    error = refused.value
    assert (error.type, error.code) == ("authentication_error", "invalid_api_key")
    assert "malformed" in error.message
    assert error.response.headers["www-authenticate"].startswith("Bearer")
    assert set(error.response.json()["error"]) == {"message", "type", "param", "code"}


async def test_a_role_without_run_is_the_sdks_permission_denied_error(echo_url: str) -> None:
    async with client(echo_url, api_key=token("read_only")) as sdk:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await sdk.chat.completions.create(model=MODEL, messages=HELLO)
    assert (refused.value.type, refused.value.code) == ("permission_error", "forbidden")


async def test_over_the_rate_limit_is_the_sdks_rate_limit_error_with_retry_after(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime({"security": {"rateLimit": {"requestsPerMinute": 2}}}, model=echo_model())
    with serving(runtime) as url:
        async with client(url) as sdk:
            for _ in range(2):
                await sdk.chat.completions.create(model=MODEL, messages=HELLO)
            with pytest.raises(openai.RateLimitError) as limited:
                await sdk.chat.completions.create(model=MODEL, messages=HELLO)
    assert (limited.value.type, limited.value.code) == ("rate_limit_error", "rate_limit_exceeded")
    assert int(limited.value.response.headers["retry-after"]) >= 1


async def test_a_failing_run_is_the_sdks_internal_server_error(sdk: AsyncOpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as failed:
        await sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "explode"}])
    assert (failed.value.status_code, failed.value.type, failed.value.code) == (500, "server_error", "internal")


@pytest.mark.parametrize(
    ("fields", "param", "says"),
    [
        ({"messages": []}, "messages", "at least 1 item"),
        ({"messages": [*HELLO, {"role": "assistant", "content": "hi"}]}, "messages[1].role", "must be the user's"),
        ({"messages": [{"role": "user", "content": " "}]}, "messages[0].content", "empty"),
        ({"messages": [{"role": "user"}]}, "messages[0].content", "required"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "Input should be"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}]},
            "messages[0].content",
            "only text parts",
        ),
        ({"messages": [{"role": "tool", "content": "42", "tool_call_id": "c"}, *HELLO]}, "messages[0].role", "tool"),
        (
            {"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]}, *HELLO]},
            "messages[0].tool_calls",
            "client-side tools",
        ),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools", "agent calls its own tools"),
        ({"tool_choice": "required"}, "tool_choice", "agent calls its own tools"),
        ({"n": 2}, "n", "one answer"),
        ({"logprobs": True}, "logprobs", "not available"),
        ({"modalities": ["text", "audio"]}, "modalities", "text only"),
        ({"temperature": 5}, "temperature", "less than or equal to 2"),
        ({"max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
        ({"response_format": {"type": "json_object"}}, "response_format.type", "no output schema"),
        (
            {"messages": [{"role": "user", "content": "x" * (RuntimeSettings().max_prompt_chars + 1)}]},
            "messages[0].content",
            "at most",
        ),
    ],
)
async def test_a_request_the_agent_cannot_serve_is_the_sdks_bad_request_error_naming_the_field(
    sdk: AsyncOpenAI, fields: dict[str, Any], param: str, says: str
) -> None:
    body: dict[str, Any] = {"model": MODEL, "messages": HELLO, **fields}
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.post("/chat/completions", body=body, cast_to=httpx.Response)
    assert (refused.value.param, refused.value.type, refused.value.code) == (
        param,
        "invalid_request_error",
        "invalid_request",
    )
    message = refused.value.response.json()["error"]["message"]
    assert message.startswith(f"{param}: ")
    assert says in message


async def test_a_body_that_is_not_json_is_refused_in_openais_shape(echo_url: str) -> None:
    headers = {**auth(), "Content-Type": "application/json"}
    refused = httpx.post(f"{echo_url}/v1/chat/completions", content=b"{not json", headers=headers)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "invalid_json", None)


async def test_unknown_fields_are_accepted(sdk: AsyncOpenAI) -> None:
    answer = await sdk.chat.completions.create(
        model=MODEL, messages=HELLO, extra_body={"some_future_field": {"x": 1}}, stream_options=None, top_p=0.5
    )
    assert answer.choices[0].message.content == "echo: hello"


async def test_a_structured_output_is_its_json_text(runtime_backend: Backend) -> None:
    schema = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}
    model = structured_model(lambda prompt, attempt: {"label": prompt.upper()})
    runtime = runtime_backend.runtime({"agent": {"outputSchema": schema}}, model=model)
    with serving(runtime) as url:
        async with client(url) as sdk:
            plain = await sdk.chat.completions.create(model=MODEL, messages=HELLO)
            asked = await sdk.chat.completions.create(
                model=MODEL, messages=HELLO, response_format={"type": "json_object"}
            )
    assert json.loads(plain.choices[0].message.content or "") == {"label": "HELLO"}
    assert json.loads(asked.choices[0].message.content or "") == {"label": "HELLO"}


class Label(BaseModel):
    """What the structured test agent answers."""

    label: str


async def test_the_sdks_parse_reads_a_structured_agents_answer(runtime_backend: Backend) -> None:
    schema = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}
    model = structured_model(lambda prompt, attempt: {"label": prompt.upper()})
    runtime = runtime_backend.runtime({"agent": {"outputSchema": schema}}, model=model)
    with serving(runtime) as url:
        async with client(url) as sdk:
            parsed = await sdk.chat.completions.parse(model=MODEL, messages=HELLO, response_format=Label)
    assert parsed.choices[0].message.parsed == Label(label="HELLO")


async def test_a_pydantic_ai_agent_talks_to_the_agent_as_its_openai_model(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime(model=streaming_model("Hello ", "from ", "Agentry"))
    with serving(runtime) as url:
        async with client(url) as sdk:
            caller = Agent(OpenAIChatModel(MODEL, provider=OpenAIProvider(openai_client=sdk)), instructions="Relay.")
            with override_allow_model_requests(True):
                answer = await caller.run("hello")
                async with caller.run_stream("hello") as streamed:
                    pieces = [piece async for piece in streamed.stream_text(delta=True)]
    assert answer.output == "Hello from Agentry"
    assert answer.usage.input_tokens > 0
    assert "".join(pieces) == "Hello from Agentry"


async def test_a_structured_agent_with_history_still_answers_its_schema(runtime_backend: Backend) -> None:
    schema = {"type": "object", "properties": {"seen": {"type": "integer"}}, "required": ["seen"]}

    def choose(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return output_call(info, {"seen": len(user_prompts(messages))})

    runtime = runtime_backend.runtime({"agent": {"outputSchema": schema}}, model=FunctionModel(choose))
    history: list[Any] = [*HELLO, {"role": "assistant", "content": '{"seen": 1}'}, {"role": "user", "content": "again"}]
    with serving(runtime) as url:
        async with client(url) as sdk:
            answer = await sdk.chat.completions.create(model=MODEL, messages=history)
    assert json.loads(answer.choices[0].message.content or "") == {"seen": 2}


async def test_without_openai_in_spec_protocols_the_endpoints_are_404(tmp_path: Path) -> None:
    runtime = Backend(data_dir=tmp_path).runtime({"protocols": []}, model=echo_model())
    with serving(runtime) as url:
        document = httpx.get(f"{url}/openapi.json").json()
        async with client(url) as sdk:
            with pytest.raises(openai.NotFoundError):
                await sdk.chat.completions.create(model=MODEL, messages=HELLO)
            with pytest.raises(openai.NotFoundError):
                await sdk.models.list()
    assert not any(path.startswith(("/v1/chat", "/v1/models")) for path in document["paths"])


async def test_the_openapi_document_names_the_agent_as_the_only_model(echo_url: str) -> None:
    document = httpx.get(f"{echo_url}/openapi.json").json()
    assert set(document["paths"]) >= {"/v1/chat/completions", "/v1/models", "/v1/models/{model}"}
    schemas = document["components"]["schemas"]
    assert schemas["ChatCompletionRequest"]["properties"]["model"]["enum"] == [MODEL]
    assert schemas["ChatMessage"]["properties"]["role"]["enum"] == ["system", "developer", "user", "assistant"]
    assert schemas["ResponseFormat"]["properties"]["type"]["enum"] == ["text"]  # the agent has no output schema
    error = document["paths"]["/v1/chat/completions"]["post"]["responses"]["429"]
    assert error["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/OpenAIErrorResponse"}


async def test_every_call_is_one_audit_record(runtime_backend: Backend) -> None:
    runtime: Runtime = runtime_backend.runtime(model=echo_model())
    with serving(runtime) as url:
        async with client(url) as sdk:
            answer = await sdk.chat.completions.create(model=MODEL, messages=HELLO)
            with pytest.raises(openai.NotFoundError):
                await sdk.chat.completions.create(model="other", messages=HELLO)
            await sdk.models.list()
        async with client(url, api_key="bad") as stranger:
            with pytest.raises(openai.AuthenticationError):
                await stranger.chat.completions.create(model=MODEL, messages=HELLO)
    records = await stored_audit(runtime, runtime_backend)
    chat = [r for r in records if r["endpoint"] == "chat_completions"]
    assert [(r["status"], r.get("error")) for r in chat] == [
        (200, None),
        (404, "model_not_found"),
        (401, "unauthenticated"),
    ]
    assert chat[0]["run_ids"] == [answer.id.removeprefix("chatcmpl-")]
    assert answer.usage is not None
    assert chat[0]["tokens_in"] == answer.usage.prompt_tokens
    assert [r["status"] for r in records if r["endpoint"] == "models"] == [200]


# --- streaming -------------------------------------------------------------------------------------


async def test_a_streamed_completion_sends_the_text_in_order_then_stop_usage_and_done(
    runtime_backend: Backend,
) -> None:
    runtime = runtime_backend.runtime(model=streaming_model("Hel", "lo ", "world"))
    with serving(runtime) as url:
        async with client(url) as sdk:
            stream = await sdk.chat.completions.create(
                model=MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True}
            )
            received = [chunk async for chunk in stream]
        raw = httpx.post(
            f"{url}/v1/chat/completions", json={"model": MODEL, "messages": HELLO, "stream": True}, headers=auth()
        )
        stored = httpx.get(f"{url}/v1/results/{received[0].id.removeprefix('chatcmpl-')}", headers=auth())
    *with_choice, usage = received
    assert [c.choices[0].delta.content for c in with_choice] == ["", "Hel", "lo ", "world", None]
    assert with_choice[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in with_choice] == [None, None, None, None, "stop"]
    assert {(c.id, c.model, c.object) for c in received} == {(received[0].id, MODEL, "chat.completion.chunk")}
    assert usage.choices == []
    assert usage.usage is not None
    assert usage.usage.total_tokens == usage.usage.prompt_tokens + usage.usage.completion_tokens > 0
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = [line for line in raw.text.splitlines() if line]
    assert events[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in events)
    assert all(json.loads(line.removeprefix("data: "))["usage"] is None for line in events[:-1])
    assert stored.json()["output"] == "Hello world"


async def test_a_streamed_structured_output_is_one_json_chunk(runtime_backend: Backend) -> None:
    schema = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[DeltaToolCalls]:
        yield {0: DeltaToolCall(name=info.output_tools[0].name, json_args='{"label": ')}
        yield {0: DeltaToolCall(json_args='"urgent"}')}

    runtime = runtime_backend.runtime({"agent": {"outputSchema": schema}}, model=FunctionModel(stream_function=stream))
    with serving(runtime) as url:
        async with client(url) as sdk:
            stream_ = await sdk.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
            contents = [c.choices[0].delta.content async for c in stream_]
    assert contents == ["", '{"label": "urgent"}', None]


async def test_a_run_failing_mid_stream_ends_it_with_openais_error_event(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime(model=streaming_model("partial ", "answer", fail=True))
    texts: list[str] = []
    with serving(runtime) as url:
        async with client(url) as sdk:
            stream = await sdk.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
            with pytest.raises(openai.APIError) as failed:
                async for chunk in stream:
                    texts.append(chunk.choices[0].delta.content or "")
        raw = httpx.post(
            f"{url}/v1/chat/completions", json={"model": MODEL, "messages": HELLO, "stream": True}, headers=auth()
        )
    assert texts == ["", "partial ", "answer"]
    assert (failed.value.type, failed.value.code) == ("server_error", "internal")
    assert raw.status_code == 200
    last = raw.text.strip().splitlines()[-1]
    assert json.loads(last.removeprefix("data: "))["error"]["type"] == "server_error"
    assert "[DONE]" not in raw.text
    records = [r for r in await stored_audit(runtime, runtime_backend) if r["endpoint"] == "chat_completions"]
    assert [(r["status"], r["error"]) for r in records] == [(500, "internal"), (500, "internal")]


async def test_a_client_closing_the_sdk_stream_stops_the_run_and_is_audited_once(runtime_backend: Backend) -> None:
    sent: list[str] = []
    words = [f"w{n} " for n in range(40)]
    runtime = runtime_backend.runtime(model=streaming_words(words, delay=0.1, sent=sent))
    with serving(runtime) as url:
        async with client(url) as sdk:
            stream = await sdk.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
            async for chunk in stream:
                if chunk.choices[0].delta.content:
                    break  # the client leaves after the first word
            await stream.close()
        async with httpx.AsyncClient(base_url=url) as plain:
            await wait_for_load(plain, in_flight=0, queued=0)
    assert len(sent) < len(words)
    [record] = [r for r in await stored_audit(runtime, runtime_backend) if r["endpoint"] == "chat_completions"]
    assert (record["status"], record["error"]) == (499, "client_disconnected")


async def test_a_streamed_request_refused_before_the_first_byte_is_a_plain_http_error(
    runtime_backend: Backend,
) -> None:
    runtime = runtime_backend.runtime({"security": {"rateLimit": {"requestsPerMinute": 1}}}, model=streaming_model("x"))
    with serving(runtime) as url:
        async with client(url) as sdk:
            with pytest.raises(openai.NotFoundError):
                await sdk.chat.completions.create(model="other", messages=HELLO, stream=True)
            with pytest.raises(openai.RateLimitError) as limited:
                await sdk.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
    assert limited.value.response.headers["content-type"] == "application/json"


async def test_a_streamed_call_sees_the_history_and_is_one_audit_record(runtime_backend: Backend) -> None:
    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        yield " / ".join(user_prompts(messages))

    runtime = runtime_backend.runtime(model=FunctionModel(stream_function=stream))
    history: list[Any] = [*HELLO, {"role": "assistant", "content": "hi"}, {"role": "user", "content": "again"}]
    with serving(runtime) as url:
        async with client(url) as sdk:
            stream_ = await sdk.chat.completions.create(model=MODEL, messages=history, stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream_])
    assert text == "hello / again"
    [record] = [r for r in await stored_audit(runtime, runtime_backend) if r["endpoint"] == "chat_completions"]
    assert (record["status"], record.get("error"), len(record["run_ids"])) == (200, None, 1)
    assert "conversation_id" not in record
