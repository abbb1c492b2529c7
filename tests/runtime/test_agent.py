"""The agent built from the spec: TestModel, scripted models, tools over deps, an OpenAI-compatible stand-in."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pydantic_ai.models
import pytest
from pydantic_ai.exceptions import UnexpectedModelBehavior, UsageLimitExceeded
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.models.test import TestModel

from agent_runtime.agent import build_agent, build_model, model_settings, usage_limits
from agent_runtime.deps import Deps
from agent_runtime.services.memory_cache import MemoryCache
from agent_runtime.services.sqlite import SqliteDatabase
from agentry_api.v1alpha1 import AgentSpec

from .models import structured_model, tool_then_text
from .servers import chat_completions_app, serve_in_thread

SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["bug", "question"]}, "score": {"type": "integer"}},
    "required": ["label", "score"],
}


@pytest.fixture
async def deps(tmp_path: Path) -> AsyncIterator[Deps]:
    database = SqliteDatabase(path=tmp_path / "a.db")
    await database.start()
    yield Deps(database=database, cache=MemoryCache())
    await database.close()


def spec(**fields: Any) -> AgentSpec:
    return AgentSpec.model_validate({"model": "test", **fields})


async def test_test_model_answers_text(deps: Deps) -> None:
    agent = build_agent(spec=spec(), api_key=None, with_external_api=False)
    result = await agent.run("hello", deps=deps)
    assert isinstance(result.output, str)
    assert result.usage.requests == 1


async def test_output_schema_gives_a_matching_object(deps: Deps) -> None:
    agent = build_agent(spec=spec(outputSchema=SCHEMA), api_key=None, with_external_api=False)
    result = await agent.run("classify", deps=deps)
    assert result.output["label"] in {"bug", "question"}
    assert isinstance(result.output["score"], int)


async def test_invalid_output_is_retried_with_the_schema_error(deps: Deps) -> None:
    seen: list[int] = []

    def choose(prompt: str, attempt: int) -> dict[str, Any]:
        seen.append(attempt)
        return {"label": "feature", "score": 1} if attempt == 0 else {"label": "bug", "score": 1}

    agent = build_agent(
        spec=spec(outputSchema=SCHEMA), api_key=None, with_external_api=False, model=structured_model(choose)
    )
    result = await agent.run("classify", deps=deps)
    assert result.output == {"label": "bug", "score": 1}
    assert seen == [0, 1]


async def test_output_that_never_matches_fails_after_output_retries(deps: Deps) -> None:
    calls: list[int] = []

    def choose(prompt: str, attempt: int) -> dict[str, Any]:
        calls.append(attempt)
        return {"label": "nope"}

    agent = build_agent(
        spec=spec(outputSchema=SCHEMA, outputRetries=2),
        api_key=None,
        with_external_api=False,
        model=structured_model(choose),
    )
    with pytest.raises(UnexpectedModelBehavior):
        await agent.run("classify", deps=deps)
    assert len(calls) == 3


async def test_usage_limits_stop_a_run(deps: Deps) -> None:
    limited = spec(usageLimits={"totalTokensLimit": 5})
    agent = build_agent(spec=limited, api_key=None, with_external_api=False)
    with pytest.raises(UsageLimitExceeded):
        await agent.run(
            "a prompt long enough to pass five tokens of input", deps=deps, usage_limits=usage_limits(limited)
        )


async def test_tools_reach_the_cache_through_deps(deps: Deps) -> None:
    agent = build_agent(
        spec=spec(),
        api_key=None,
        with_external_api=False,
        model=tool_then_text("cache_set", {"key": "k", "value": "v"}),
    )
    result = await agent.run("remember", deps=deps)
    assert json.loads(result.output) == "stored"
    assert await deps.cache.get("tool:k") == "v"


async def test_lookup_result_reads_the_database(deps: Deps) -> None:
    await deps.database.save_result("abc", {"output": "earlier"})
    agent = build_agent(
        spec=spec(), api_key=None, with_external_api=False, model=tool_then_text("lookup_result", {"run_id": "abc"})
    )
    result = await agent.run("look", deps=deps)
    assert json.loads(result.output) == {"output": "earlier"}


def test_external_api_tool_only_when_configured() -> None:
    def tool_names(agent: Any) -> set[str]:
        return {name for toolset in agent.toolsets for name in getattr(toolset, "tools", {})}

    without = build_agent(spec=spec(), api_key=None, with_external_api=False)
    with_api = build_agent(spec=spec(), api_key=None, with_external_api=True)
    assert "call_external_api" not in tool_names(without)
    assert "call_external_api" in tool_names(with_api)


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
    assert build_model(spec=spec(model="anthropic:claude-x"), api_key=None) == "anthropic:claude-x"


DRAFT7_PAIR = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {"pair": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}},
    "required": ["pair"],
}


async def test_outputs_are_validated_under_the_draft_the_schema_names(deps: Deps) -> None:
    """Draft-07 tuple `items`: the second item must be an integer (2020-12 would not even accept the schema)."""
    answers: list[dict[str, Any]] = [{"pair": ["a", "b"]}, {"pair": ["a", 1]}]
    seen: list[str] = []

    def choose(prompt: str, attempt: int) -> dict[str, Any]:
        seen.append(prompt)
        return answers[attempt]

    agent = build_agent(
        spec=spec(outputSchema=DRAFT7_PAIR), api_key=None, with_external_api=False, model=structured_model(choose)
    )
    result = await agent.run("pair", deps=deps)
    assert result.output == {"pair": ["a", 1]}
    assert len(seen) == 2


# --- the OpenAI-compatible path, against a local stand-in server -------------------------------


@pytest.fixture
def openai_standin() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    requests: list[dict[str, Any]] = []
    with serve_in_thread(chat_completions_app(requests)) as url:
        yield url, requests


async def test_openai_compatible_endpoint(
    openai_standin: tuple[str, list[dict[str, Any]]], deps: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pydantic_ai.models, "ALLOW_MODEL_REQUESTS", True)  # a loopback stand-in, not a provider
    url, requests = openai_standin
    endpoint_spec = spec(
        model="openai-chat:local-model",
        endpoint={"baseURL": f"{url}/v1", "apiKeySecretRef": {"name": "llm", "key": "api-key"}},
        instructions="Be brief.",
        modelSettings={"temperature": 0.1},
    )
    agent = build_agent(spec=endpoint_spec, api_key="sk-local", with_external_api=False)
    async with agent:
        result = await agent.run("ping", deps=deps)
    assert result.output == "echo: ping"
    assert result.usage.input_tokens == 11
    assert result.usage.output_tokens == 3
    [sent] = requests
    assert sent["authorization"] == "Bearer sk-local"
    assert sent["body"]["model"] == "local-model"
    assert sent["body"]["temperature"] == 0.1
    assert sent["body"]["messages"][0] == {"role": "system", "content": "Be brief."}
