"""The declarative agent, run as the runner runs it: TestModel, scripted models, built-in tools, an OpenAI stand-in."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pydantic_ai.models
import pytest
from pydantic_ai.exceptions import UnexpectedModelBehavior, UsageLimitExceeded
from pydantic_ai.models import Model
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.models.test import TestModel

from agent_runtime.agent import build_model, declarative_agent, model_settings, run_options
from agent_runtime.execution import AgentRunner, RunFailed, RunOutcome
from agent_runtime.security.principal import Principal
from agent_runtime.services.container import Services
from agent_runtime.services.memory_cache import MemoryCache
from agent_runtime.services.sqlite import SqliteDatabase
from agent_runtime.services.views import agent_services
from agent_runtime.toolsets import AgentToolsets
from agentry_api.v1alpha1 import AgentSpec

from .models import structured_model, tool_then_text
from .servers import chat_completions_app, serve_in_thread

SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["bug", "question"]}, "score": {"type": "integer"}},
    "required": ["label", "score"],
}
CALLER = Principal(subject="alice@example.com", roles=frozenset({"agent_operator"}))


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    database = SqliteDatabase(path=tmp_path / "a.db")
    await database.start()
    yield Services(database=database, cache=MemoryCache())
    await database.close()


def spec(**fields: Any) -> AgentSpec:
    return AgentSpec.model_validate({"model": "test", **fields})


async def run(
    agent_spec: AgentSpec, services: Services, prompt: str, *, model: Model | None = None, api_key: str | None = None
) -> RunOutcome:
    """One run of the declarative agent, as the envelope's runner makes it (without admission)."""
    runner = AgentRunner(
        app=declarative_agent(agent_spec),
        services=agent_services(services),
        options=run_options(spec=agent_spec, api_key=api_key, model=model),
        toolsets=AgentToolsets(spec=agent_spec, services=services),
        timeout=10,
    )
    await runner.start()
    try:
        return await runner.run(prompt=prompt, context=None, admitted=nullcontext(), caller=CALLER)
    finally:
        await runner.close()


async def test_test_model_answers_text(services: Services) -> None:
    result = await run(spec(), services, "hello")
    assert isinstance(result.output, str)
    assert result.requests == 1


async def test_output_schema_gives_a_matching_object(services: Services) -> None:
    result = await run(spec(outputSchema=SCHEMA), services, "classify")
    assert result.output["label"] in {"bug", "question"}
    assert isinstance(result.output["score"], int)


async def test_invalid_output_is_retried_with_the_schema_error(services: Services) -> None:
    seen: list[int] = []

    def choose(prompt: str, attempt: int) -> dict[str, Any]:
        seen.append(attempt)
        return {"label": "feature", "score": 1} if attempt == 0 else {"label": "bug", "score": 1}

    result = await run(spec(outputSchema=SCHEMA), services, "classify", model=structured_model(choose))
    assert result.output == {"label": "bug", "score": 1}
    assert seen == [0, 1]


async def test_output_that_never_matches_fails_after_output_retries(services: Services) -> None:
    calls: list[int] = []

    def choose(prompt: str, attempt: int) -> dict[str, Any]:
        calls.append(attempt)
        return {"label": "nope"}

    with pytest.raises(RunFailed) as failed:
        await run(spec(outputSchema=SCHEMA, outputRetries=2), services, "classify", model=structured_model(choose))
    assert isinstance(failed.value.error, UnexpectedModelBehavior)
    assert len(calls) == 3


async def test_usage_limits_stop_a_run(services: Services) -> None:
    limited = spec(usageLimits={"totalTokensLimit": 5})
    with pytest.raises(RunFailed) as failed:
        await run(limited, services, "a prompt long enough to pass five tokens of input")
    assert isinstance(failed.value.error, UsageLimitExceeded)


async def test_tools_reach_the_cache(services: Services) -> None:
    result = await run(spec(), services, "remember", model=tool_then_text("cache_set", {"key": "k", "value": "v"}))
    assert json.loads(result.output) == "stored"
    assert await services.cache.get("tool:k") == "v"
    [call] = result.tool_calls
    assert (call.tool, call.args, call.ok) == ("cache_set", {"key": "k", "value": "v"}, True)


async def test_lookup_result_reads_the_database(services: Services) -> None:
    await services.database.save_result("abc", {"output": "earlier"})
    result = await run(spec(), services, "look", model=tool_then_text("lookup_result", {"run_id": "abc"}))
    assert json.loads(result.output) == {"output": "earlier"}


def test_external_api_tool_only_when_configured(services: Services) -> None:
    def tool_names(toolsets: AgentToolsets) -> set[str]:
        return {name for toolset in toolsets.static for name in getattr(toolset, "tools", {})}

    with_api = Services(database=services.database, cache=services.cache, external_api=object())  # type: ignore[arg-type]
    assert "call_external_api" not in tool_names(AgentToolsets(spec=spec(), services=services))
    assert "call_external_api" in tool_names(AgentToolsets(spec=spec(), services=with_api))


@pytest.mark.parametrize(
    ("toolsets", "expected"),
    [
        (None, {"lookup_result", "cache_get", "cache_set"}),
        ([], set()),
        ([{"name": "mine", "builtin": {"tools": ["cache_get"]}}], {"cache_get"}),
    ],
)
def test_toolsets_choose_the_builtin_tools(
    services: Services, toolsets: list[dict[str, Any]] | None, expected: set[str]
) -> None:
    agent_spec = spec() if toolsets is None else spec(toolsets=toolsets)
    chosen = AgentToolsets(spec=agent_spec, services=services)
    assert {name for toolset in chosen.static for name in getattr(toolset, "tools", {})} == expected


def test_model_settings_leave_out_what_the_spec_does_not_set() -> None:
    assert model_settings(spec()) == {}
    assert model_settings(spec(modelSettings={"temperature": 0.2, "maxTokens": 64, "timeoutSeconds": 9})) == {
        "temperature": 0.2,
        "max_tokens": 64,
        "timeout": 9,
    }


def test_model_choice() -> None:
    assert isinstance(build_model(spec=spec(), api_key=None), TestModel)
    endpoint = spec(model="ollama:llama3", endpoint={"baseURL": "http://127.0.0.1:1/v1"})
    assert isinstance(build_model(spec=endpoint, api_key=None), OpenAIChatModel)
    assert build_model(spec=AgentSpec.model_validate({"code": {"entrypoint": "bot:agent"}}), api_key=None) is None


DRAFT7_PAIR = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {"pair": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}},
    "required": ["pair"],
}


async def test_outputs_are_validated_under_the_draft_the_schema_names(services: Services) -> None:
    """Draft-07 tuple `items`: the second item must be an integer (2020-12 would not even accept the schema)."""
    answers: list[dict[str, Any]] = [{"pair": ["a", "b"]}, {"pair": ["a", 1]}]
    seen: list[str] = []

    def choose(prompt: str, attempt: int) -> dict[str, Any]:
        seen.append(prompt)
        return answers[attempt]

    result = await run(spec(outputSchema=DRAFT7_PAIR), services, "pair", model=structured_model(choose))
    assert result.output == {"pair": ["a", 1]}
    assert len(seen) == 2


# --- the OpenAI-compatible path, against a local stand-in server -------------------------------


@pytest.fixture
def openai_standin() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    requests: list[dict[str, Any]] = []
    with serve_in_thread(chat_completions_app(requests)) as url:
        yield url, requests


async def test_openai_compatible_endpoint(
    openai_standin: tuple[str, list[dict[str, Any]]], services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pydantic_ai.models, "ALLOW_MODEL_REQUESTS", True)  # a loopback stand-in, not a provider
    url, requests = openai_standin
    endpoint_spec = spec(
        model="openai-chat:local-model",
        endpoint={"baseURL": f"{url}/v1", "apiKeySecretRef": {"name": "llm", "key": "api-key"}},
        instructions="Be brief.",
        modelSettings={"temperature": 0.1},
    )
    result = await run(endpoint_spec, services, "ping", api_key="sk-local")
    assert result.output == "echo: ping"
    assert result.input_tokens == 11
    assert result.output_tokens == 3
    [sent] = requests
    assert sent["authorization"] == "Bearer sk-local"
    assert sent["body"]["model"] == "local-model"
    assert sent["body"]["temperature"] == 0.1
    assert sent["body"]["messages"][0] == {"role": "system", "content": "Be brief."}
