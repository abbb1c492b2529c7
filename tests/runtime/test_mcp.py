"""MCP toolsets against a real FastMCP server: tools, allow-list, Secret headers, token forwarding, failures."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, RetryPromptPart, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from agent_runtime.errors import from_agent_error
from agent_runtime.mcp import McpToolsets
from agent_runtime.mcp_errors import McpToolsetError

from .harness import Backend, auth, env_for, serving, stored_audit, token
from .mcp_servers import API_KEY, KEY_HEADER, Seen, mcp_app, silent_server
from .models import tool_returns
from .servers import free_port, serve_in_thread

MCP_KEY_REF = {"name": "tickets-mcp", "key": "api-key"}


@dataclass(frozen=True)
class OtherDeps:
    """A user's own deps type: MCP tools must not need Agentry's."""

    tenant: str = "acme"


def toolsets_for(tmp_path: Path, *toolsets: dict[str, Any], key: str = API_KEY) -> McpToolsets:
    """McpToolsets built from a spec listing `toolsets`, the API key Secret supplied by the environment."""
    backend = Backend(data_dir=tmp_path, environ=env_for({"key": key}, {"key": MCP_KEY_REF}))
    return McpToolsets.from_config(backend.config({"agent": {"toolsets": list(toolsets)}}))


def mcp_toolset(url: str, **fields: Any) -> dict[str, Any]:
    """One MCP toolset entry of the spec, named tickets."""
    return {"name": "tickets", "mcp": {"url": url, **fields}}


def calls(tool: str, args: dict[str, Any] | None = None) -> tuple[FunctionModel, list[list[str]]]:
    """A model that calls `tool` once, then answers with what came back; and the tool names it was offered."""
    offered: list[list[str]] = []

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        offered.append(sorted(t.name for t in info.function_tools))
        retries = [
            p for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, RetryPromptPart)
        ]
        returns = tool_returns(messages)
        if not returns and not retries:
            return ModelResponse(parts=[ToolCallPart(tool, json.dumps(args or {}))])
        said = returns[-1].content if returns else retries[-1].model_response()
        return ModelResponse(parts=[TextPart(json.dumps(said, default=str))])

    return FunctionModel(answer), offered


async def run_agent(toolsets: McpToolsets, model: FunctionModel, *, token: str | None = None) -> Any:
    """One run of a plain pydantic-ai Agent (deps of its own type) with the toolsets of `for_run`."""
    agent = Agent(model, deps_type=OtherDeps)
    async with toolsets.for_run(bearer_token=token) as extra:
        result = await agent.run("go", deps=OtherDeps(), toolsets=extra)
    return json.loads(result.output)


@pytest.fixture
def server() -> Iterator[tuple[str, Seen]]:
    """A FastMCP server over streamable HTTP that wants the API key header; its /mcp URL and what it saw."""
    seen = Seen()
    with serve_in_thread(mcp_app(seen, api_key=API_KEY)) as base:
        yield f"{base}/mcp", seen


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_tools_are_listed_and_called_through_an_agent(tmp_path: Path, transport: str) -> None:
    seen = Seen()
    app = mcp_app(seen, transport="http" if transport == "streamable-http" else "sse")
    with serve_in_thread(app) as base:
        toolsets = toolsets_for(tmp_path, mcp_toolset(f"{base}/mcp", transport=transport))
        await toolsets.start()
        try:
            model, offered = calls("add", {"a": 2, "b": 40})
            assert await run_agent(toolsets, model) == 42
            assert await run_agent(toolsets, calls("add", {"a": 1, "b": 1})[0]) == 2
        finally:
            await toolsets.close()
    assert offered[0] == ["add", "delete_everything", "find_ticket", "hang", "traceparent", "whoami"]
    assert seen.calls == ["add", "add"]


async def test_concurrent_runs_share_one_session_and_forwarded_ones_keep_their_own_token(tmp_path: Path) -> None:
    seen = Seen()
    with serve_in_thread(mcp_app(seen)) as base:
        shared = mcp_toolset(f"{base}/mcp", allowedTools=["add"])
        me = {"name": "me", "mcp": {"url": f"{base}/mcp", "allowedTools": ["whoami"], "forwardBearerToken": True}}
        toolsets = toolsets_for(tmp_path, shared, me)
        await toolsets.start()
        try:
            adding = (run_agent(toolsets, calls("add", {"a": n, "b": 1})[0], token="t") for n in range(8))
            sums = await asyncio.gather(*adding)
            whos = await asyncio.gather(*(run_agent(toolsets, calls("whoami")[0], token=f"t{n}") for n in range(8)))
        finally:
            await toolsets.close()
    assert sums == [n + 1 for n in range(8)]
    assert whos == [f"Bearer t{n}" for n in range(8)]


async def test_the_allow_list_hides_other_tools_and_refuses_a_call_to_one(
    tmp_path: Path, server: tuple[str, Seen]
) -> None:
    url, seen = server
    spec = mcp_toolset(url, headers=[{"name": KEY_HEADER, "secretRef": MCP_KEY_REF}], allowedTools=["add"])
    toolsets = toolsets_for(tmp_path, spec)
    await toolsets.start()
    try:
        model, offered = calls("delete_everything")
        answer = await run_agent(toolsets, model)
    finally:
        await toolsets.close()
    assert offered == [["add"], ["add"]]
    assert "Unknown tool name: 'delete_everything'" in answer
    assert seen.calls == []


async def test_a_tools_own_error_goes_back_to_the_model_and_the_run_goes_on(
    tmp_path: Path, server: tuple[str, Seen]
) -> None:
    url, seen = server
    toolsets = toolsets_for(tmp_path, mcp_toolset(url, headers=[{"name": KEY_HEADER, "secretRef": MCP_KEY_REF}]))
    await toolsets.start()
    try:
        answer = await run_agent(toolsets, calls("find_ticket", {"ticket_id": "T-9"})[0])
    finally:
        await toolsets.close()
    assert "no ticket T-9" in answer
    assert seen.calls == ["find_ticket"]


async def test_the_prefix_names_the_tools_and_calls_reach_the_original(
    tmp_path: Path, server: tuple[str, Seen]
) -> None:
    url, seen = server
    spec = mcp_toolset(url, headers=[{"name": KEY_HEADER, "secretRef": MCP_KEY_REF}], toolPrefix="tickets")
    toolsets = toolsets_for(tmp_path, spec)
    await toolsets.start()
    try:
        model, offered = calls("tickets_add", {"a": 3, "b": 4})
        assert await run_agent(toolsets, model) == 7
    finally:
        await toolsets.close()
    assert "tickets_add" in offered[0]
    assert seen.calls == ["add"]


async def test_a_secret_header_reaches_the_server_and_a_wrong_one_is_refused(
    tmp_path: Path, server: tuple[str, Seen]
) -> None:
    url, seen = server
    spec = mcp_toolset(url, headers=[{"name": KEY_HEADER, "secretRef": MCP_KEY_REF}])
    good = toolsets_for(tmp_path, spec)
    await good.start()
    try:
        assert await run_agent(good, calls("add", {"a": 1, "b": 2})[0]) == 3
    finally:
        await good.close()
    wrong = toolsets_for(tmp_path, spec, key="not-the-key")
    await wrong.start()
    try:
        [health] = await wrong.check()
        with pytest.raises(McpToolsetError) as raised:
            await run_agent(wrong, calls("add", {"a": 1, "b": 2})[0])
    finally:
        await wrong.close()
    assert health.name == "mcp:tickets" and health.state == "degraded"
    error = from_agent_error(raised.value, timeout_seconds=10)
    assert (error.status, error.kind) == (502, "mcp_error")
    assert "'tickets'" in error.message and "not-the-key" not in error.message
    assert seen.calls == ["add"]


async def test_the_callers_bearer_token_is_forwarded_per_run(tmp_path: Path) -> None:
    seen = Seen()
    with serve_in_thread(mcp_app(seen)) as base:
        toolsets = toolsets_for(tmp_path, mcp_toolset(f"{base}/mcp", forwardBearerToken=True))
        await toolsets.start()
        try:
            [health] = await toolsets.check()
            assert await run_agent(toolsets, calls("whoami")[0], token="token-of-alice") == "Bearer token-of-alice"
            assert await run_agent(toolsets, calls("whoami")[0], token="token-of-bob") == "Bearer token-of-bob"
            with pytest.raises(McpToolsetError) as raised:
                await run_agent(toolsets, calls("whoami")[0], token=None)
        finally:
            await toolsets.close()
    assert seen.authorization == ["Bearer token-of-alice", "Bearer token-of-bob"]
    assert health.state == "ok" and "per run" in health.detail
    error = from_agent_error(raised.value, timeout_seconds=10)
    assert (error.status, error.kind) == (401, "unauthenticated")
    assert error.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_server_down_at_start_degrades_health_fails_runs_and_works_once_up(tmp_path: Path) -> None:
    port = free_port()
    toolsets = toolsets_for(tmp_path, mcp_toolset(f"http://127.0.0.1:{port}/mcp", timeoutSeconds=2))
    await toolsets.start()
    try:
        [down] = await toolsets.check()
        with pytest.raises(McpToolsetError) as raised:
            await run_agent(toolsets, calls("add", {"a": 1, "b": 2})[0])
        seen = Seen()
        with serve_in_thread(mcp_app(seen), port=port):
            [up] = await toolsets.check()
            assert await run_agent(toolsets, calls("add", {"a": 1, "b": 2})[0]) == 3
        with pytest.raises(McpToolsetError):
            await run_agent(toolsets, calls("add", {"a": 1, "b": 2})[0])
        with serve_in_thread(mcp_app(seen), port=port):
            assert await run_agent(toolsets, calls("add", {"a": 5, "b": 5})[0]) == 10
    finally:
        await toolsets.close()
    assert down.name == "mcp:tickets" and down.state == "degraded"
    assert up.state == "ok"
    error = from_agent_error(raised.value, timeout_seconds=10)
    assert (error.status, error.kind, error.retry_after) == (503, "mcp_unavailable", 5)
    assert "MCP toolset 'tickets' is unavailable" in error.message
    assert seen.calls == ["add", "add"]


async def test_a_tool_call_that_hangs_fails_within_the_timeout(tmp_path: Path) -> None:
    seen = Seen()
    with serve_in_thread(mcp_app(seen, hang_seconds=3)) as base:
        toolsets = toolsets_for(tmp_path, mcp_toolset(f"{base}/mcp", timeoutSeconds=0.5))
        await toolsets.start()
        try:
            started = time.perf_counter()
            with pytest.raises(McpToolsetError) as raised:
                await run_agent(toolsets, calls("hang")[0])
            elapsed = time.perf_counter() - started
            assert await run_agent(toolsets, calls("add", {"a": 1, "b": 2})[0]) == 3
        finally:
            await toolsets.close()
    assert 0.5 <= elapsed < 1.5
    error = from_agent_error(raised.value, timeout_seconds=10)
    assert (error.status, error.kind) == (503, "mcp_unavailable")
    assert error.message == "MCP toolset 'tickets' is too slow: the call of hang took longer than 0.5s"


async def test_a_server_that_never_answers_fails_start_checks_and_runs_within_the_timeout(tmp_path: Path) -> None:
    async with silent_server() as url:
        toolsets = toolsets_for(tmp_path, mcp_toolset(url, timeoutSeconds=0.5))
        started = time.perf_counter()
        await toolsets.start()
        [health] = await toolsets.check()
        with pytest.raises(McpToolsetError) as raised:
            await run_agent(toolsets, calls("add")[0])
        elapsed = time.perf_counter() - started
        await toolsets.close()
    assert elapsed < 3 * 0.5 + 1
    assert health.state == "degraded" and "0.5s" in health.detail
    assert raised.value.failure == "timeout"


async def test_start_and_health_checks_are_bounded_below_the_toolset_timeout(tmp_path: Path) -> None:
    async with silent_server() as url:
        backend = Backend(data_dir=tmp_path)
        config = backend.config({"agent": {"toolsets": [mcp_toolset(url, timeoutSeconds=30)]}})
        toolsets = McpToolsets.from_config(config, check_timeout=0.3)
        started = time.perf_counter()
        await toolsets.start()
        [health] = await toolsets.check()
        await toolsets.close()
        elapsed = time.perf_counter() - started
    assert health.state == "degraded" and health.detail == "no answer within 0.3s"
    assert elapsed < 2


async def test_no_mcp_toolset_gives_no_toolsets_and_no_checks(tmp_path: Path) -> None:
    toolsets = McpToolsets.from_config(Backend(data_dir=tmp_path).config())
    await toolsets.start()
    async with toolsets.for_run(bearer_token=None) as extra:
        assert extra == []
    assert await toolsets.check() == []
    await toolsets.close()


def calls_both(*, first: tuple[str, dict[str, Any]], second: str) -> FunctionModel:
    """Calls two tools in one response, then answers with both results as a JSON list."""

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returns = tool_returns(messages)
        if not returns:
            name, args = first
            return ModelResponse(parts=[ToolCallPart(name, json.dumps(args)), ToolCallPart(second, "{}")])
        return ModelResponse(parts=[TextPart(json.dumps([r.content for r in returns], default=str))])

    return FunctionModel(answer)


async def test_a_declarative_agent_calls_mcp_tools_through_the_http_api_and_the_audit_lists_them(
    tmp_path: Path,
) -> None:
    seen = Seen()
    with serve_in_thread(mcp_app(seen)) as base:
        tickets = mcp_toolset(f"{base}/mcp", headers=[{"name": KEY_HEADER, "secretRef": MCP_KEY_REF}], toolPrefix="t")
        me = {"name": "me", "mcp": {"url": f"{base}/mcp", "allowedTools": ["whoami"], "forwardBearerToken": True}}
        backend = Backend(data_dir=tmp_path, environ=env_for({"key": API_KEY}, {"key": MCP_KEY_REF}))
        model = calls_both(first=("t_add", {"a": 40, "b": 2}), second="whoami")
        runtime = backend.runtime(
            {"agent": {"toolsets": [{"name": "builtin", "builtin": {}}, tickets, me]}}, model=model
        )
        caller = token(subject="carol@example.com")
        with serving(runtime) as url:
            async with httpx.AsyncClient(base_url=url) as client:
                response = await client.post(
                    "/v1/run", json={"prompt": "add"}, headers={"Authorization": f"Bearer {caller}"}
                )
                health = (await client.get("/health")).json()
    assert response.status_code == 200, response.text
    assert json.loads(response.json()["output"]) == [42, f"Bearer {caller}"]
    assert seen.authorization == [f"Bearer {caller}"]
    states = {d["name"]: d["state"] for d in health["dependencies"]}
    assert states["mcp:tickets"] == "ok" and states["mcp:me"] == "ok"
    [record] = [r for r in await stored_audit(runtime, backend) if r["endpoint"] == "run"]
    calls = sorted((c["tool"], c["args"], c["ok"]) for c in record["tool_calls"])
    assert calls == [("t_add", {"a": 40, "b": 2}, True), ("whoami", {}, True)]
    assert caller not in json.dumps(record), "the forwarded token is never audited"


async def test_a_run_through_the_http_api_whose_mcp_server_is_down_is_503_with_retry_after(tmp_path: Path) -> None:
    down = mcp_toolset(f"http://127.0.0.1:{free_port()}/mcp", timeoutSeconds=2)
    backend = Backend(data_dir=tmp_path)
    runtime = backend.runtime({"agent": {"toolsets": [down]}}, model=calls("add", {"a": 1, "b": 2})[0])
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            response = await client.post("/v1/run", json={"prompt": "add"}, headers=auth())
            health = (await client.get("/health")).json()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json()["error"]["type"] == "mcp_unavailable"
    assert "'tickets'" in response.json()["error"]["message"]
    assert health["status"] == "degraded"
    [dependency] = [d for d in health["dependencies"] if d["name"] == "mcp:tickets"]
    assert dependency["state"] == "degraded"
    [record] = [r for r in await stored_audit(runtime, backend) if r["endpoint"] == "run"]
    assert (record["outcome"], record["error"]) == ("error", "mcp_unavailable")
