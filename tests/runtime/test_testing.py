"""The testing kit: in-memory services that keep the production contracts and record calls; the harness."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel

from agent_runtime.config import ConfigError
from agent_runtime.sdk import AgentryDeps, Services
from agent_runtime.security.tokens import mint_token
from agent_runtime.services.breaker import CircuitOpenError
from agent_runtime.services.http import ExternalApiError
from agent_runtime.services.protocols import Cache, Database
from agent_runtime.services.sqlite import SqliteDatabase
from agent_runtime.services.views import AppCache, Records
from agent_runtime.testing import (
    AgentHarness,
    Call,
    HarnessError,
    MemoryDatabase,
    RecordingCache,
    Reply,
    ScriptedExternalApi,
)
from agent_runtime.usercode import EntrypointError

from . import test_cache, test_database


def _contract_tests(module: ModuleType, fixture: str) -> dict[str, Any]:
    return {
        name: test
        for name, test in vars(module).items()
        if name.startswith("test_") and fixture in inspect.signature(test).parameters
    }


# The contract tests of the production database and cache, run again here on the kit's services (the fixtures
# below replace the SQLite/PostgreSQL and memory/Redis ones for this module).
globals().update(_contract_tests(test_database, "database") | _contract_tests(test_cache, "cache"))


@pytest.fixture
async def database() -> AsyncIterator[Database]:
    db = MemoryDatabase()
    await db.start()
    yield db
    await db.close()


@pytest.fixture
async def cache() -> AsyncIterator[Cache]:
    c = RecordingCache()
    await c.start()
    yield c
    await c.close()


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """The kit's database next to SQLite: the records tests hold for both."""
    db: Database = MemoryDatabase() if request.param == "memory" else SqliteDatabase(path=tmp_path / "a.db")
    await db.start()
    yield db
    await db.close()


async def test_records_are_stored_replaced_and_deleted_like_sqlite(store: Database) -> None:
    records = Records(store)
    await records.put("tickets", "T-1", {"title": "printer", "tags": ["hw"]})
    await records.put("tickets", "T-1", {"title": "printer on fire"})
    await records.put("notes", "T-1", "other collection")

    assert await records.get("tickets", "T-1") == {"title": "printer on fire"}
    assert await records.get("tickets", "T-2") is None
    assert await records.delete("tickets", "T-1") is True
    assert await records.delete("tickets", "T-1") is False
    assert await records.get("notes", "T-1") == "other collection"


async def test_records_list_by_prefix_in_key_order_up_to_the_limit_like_sqlite(store: Database) -> None:
    records = Records(store)
    for key in ("b-2", "a-1", "b-1", "b-3", "c-1"):
        await records.put("tickets", key, {"key": key})

    assert [key for key, _ in await records.list("tickets", prefix="b-")] == ["b-1", "b-2", "b-3"]
    assert await records.list("tickets", prefix="b-", limit=2) == [("b-1", {"key": "b-1"}), ("b-2", {"key": "b-2"})]
    assert await records.list("empty") == []


async def test_a_value_no_database_can_store_fails_as_in_sqlite(store: Database) -> None:
    with pytest.raises(TypeError):
        await Records(store).put("tickets", "T-1", {"when": object()})


async def test_a_stored_value_is_a_copy_not_the_tools_object(store: Database) -> None:
    value: dict[str, Any] = {"tags": ["a"]}
    await store.put("tickets", "T-1", value)
    value["tags"].append("b")
    got = await store.get("tickets", "T-1")
    assert got == {"tags": ["a"]}
    assert isinstance(got, dict)
    got["tags"].append("c")
    assert await store.get("tickets", "T-1") == {"tags": ["a"]}


async def test_fresh_conversations_are_counted_like_sqlite(store: Database) -> None:
    await store.save_conversation("old", "alice", "[]", now=100)
    await store.save_conversation("new", "bob", "[]", now=200)
    assert [await store.count_conversations(fresh_after=at) for at in (0, 200, 201)] == [2, 1, 0]


async def test_the_database_records_each_call_with_its_arguments() -> None:
    db = MemoryDatabase()
    await db.start()
    value = {"title": "printer"}
    await Records(db).put("tickets", "T-1", value)
    value["title"] = "changed after the call"
    await Records(db).get("tickets", "T-1")
    await Records(db).list("tickets", prefix="T-")

    assert db.calls[1:] == [
        Call("put", {"collection": "tickets", "key": "T-1", "value": {"title": "printer"}}),
        Call("get", {"collection": "tickets", "key": "T-1"}),
        Call("list", {"collection": "tickets", "prefix": "T-", "limit": 100}),
    ]
    assert db.calls[0] == ("start", {})
    assert db.calls_to("get") == [{"collection": "tickets", "key": "T-1"}]
    assert db.collection("tickets") == {"T-1": {"title": "printer"}}


async def test_the_cache_shows_the_tools_calls_without_the_app_prefix() -> None:
    cache = RecordingCache()
    await cache.set("runs:1", "the runtime's own")
    tools = AppCache(cache)
    await tools.set("ticket:T-1", "{}", ttl_seconds=60)
    assert await tools.get("ticket:T-1") == "{}"
    assert await tools.invalidate("ticket:*") == 1

    assert cache.app_calls() == [
        Call("set", {"key": "ticket:T-1", "value": "{}", "ttl_seconds": 60}),
        Call("get", {"key": "ticket:T-1"}),
        Call("invalidate", {"pattern": "ticket:*"}),
    ]
    assert cache.calls_to("set")[0] == {"key": "runs:1", "value": "the runtime's own", "ttl_seconds": None}
    assert await cache.get("runs:1") == "the runtime's own"


async def test_the_external_api_answers_as_scripted_and_records_each_request() -> None:
    api = ScriptedExternalApi().reply("GET", "/status/email", json={"state": "up"})
    api.reply("POST", "/tickets", lambda request: Reply(status=201, json={"echo": request.url.path}))
    await api.start()
    try:
        status = await api.request("GET", "/status/email")
        created = await api.request("POST", "/tickets", json={"title": "printer"})
        missing = await api.request("GET", "/status/billing")
    finally:
        await api.close()

    assert (status.status_code, status.json()) == (200, {"state": "up"})
    assert (created.status_code, created.json()) == (201, {"echo": "/tickets"})
    assert missing.status_code == 404
    assert missing.json() == {"error": "no scripted reply for GET /status/billing"}
    assert api.calls_to("request") == [
        {"method": "GET", "path": "/status/email", "json": None},
        {"method": "POST", "path": "/tickets", "json": {"title": "printer"}},
        {"method": "GET", "path": "/status/billing", "json": None},
    ]


async def test_scripted_answers_queue_and_the_production_retries_and_breaker_apply() -> None:
    api = ScriptedExternalApi(max_retries=1, failure_threshold=2)
    api.reply("GET", "/flaky", status=503).reply("GET", "/flaky", json={"ok": True})
    api.reply("GET", "/down", status=500)
    await api.start()
    try:
        recovered = await api.request("GET", "/flaky")
        with pytest.raises(ExternalApiError, match="HTTP 500"):
            await api.request("GET", "/down")
        with pytest.raises(CircuitOpenError):
            await api.request("GET", "/down")
    finally:
        await api.close()

    assert recovered.json() == {"ok": True}
    assert [call["path"] for call in api.calls_to("request")] == ["/flaky", "/flaky", "/down", "/down"]
    assert (await api.check()).state == "degraded"


async def test_the_external_api_sends_the_api_key_as_production_does() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> Reply:
        seen.append(request)
        return Reply()

    api = ScriptedExternalApi(api_key="k-123").reply("GET", "/", answer)
    await api.start()
    try:
        await api.request("GET", "/")
    finally:
        await api.close()
    assert seen[0].headers["authorization"] == "Bearer k-123"


# --- the harness -------------------------------------------------------------------------------------------------

notes = Agent(deps_type=AgentryDeps, name="notes")


@notes.tool
async def take_note(ctx: RunContext[AgentryDeps], text: str) -> str:
    await ctx.deps.database.put("notes", ctx.deps.run_id, {"text": text, "by": ctx.deps.caller.subject})
    await ctx.deps.cache.set(f"note:{ctx.deps.run_id}", text)
    return "noted"


def notes_factory(services: Services) -> Agent[AgentryDeps, str]:
    """A factory entrypoint: given the services before they start, returns the agent."""
    return notes


def note_model(text: str = "buy milk") -> FunctionModel:
    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if any(isinstance(part, ToolReturnPart) for part in messages[-1].parts):
            return ModelResponse(parts=[TextPart("done")])
        return ModelResponse(parts=[ToolCallPart("take_note", {"text": text})])

    return FunctionModel(model)


async def test_a_run_goes_through_the_envelope_and_leaves_the_record_and_its_audit() -> None:
    async with AgentHarness(notes, model=note_model()) as kit:
        answer = await kit.run("Remember to buy milk", subject="alice")
        refused = await kit.client.post("/v1/run", json={"prompt": "x"})
        audit = await kit.audit()

    assert answer.status_code == 200, answer.text
    run_id = answer.json()["runId"]
    assert kit.database.collection("notes") == {run_id: {"text": "buy milk", "by": "alice"}}
    assert kit.database.calls_to("put") == [
        {"collection": "notes", "key": run_id, "value": {"text": "buy milk", "by": "alice"}}
    ]
    assert kit.cache.app_calls() == [Call("set", {"key": f"note:{run_id}", "value": "buy milk", "ttl_seconds": None})]
    assert kit.database.results[run_id]["output"] == "done"
    assert refused.status_code == 401
    assert [(r["endpoint"], r["status"], r["outcome"]) for r in audit] == [
        ("run", 200, "ok"),
        ("run", 401, "error"),
    ]
    assert audit[0]["run_ids"] == [run_id]
    assert [(c["tool"], c["args"]) for c in audit[0]["tool_calls"]] == [("take_note", {"text": "buy milk"})]
    assert [line["record"] for line in kit.audit_log() if line["kind"] == "audit"] == audit


async def test_the_entrypoint_string_of_a_factory_is_imported_as_the_pod_imports_it() -> None:
    entrypoint = f"{__name__}:notes_factory"
    manifest = {
        "metadata": {"name": "notes", "namespace": "team-a"},
        "spec": {"agent": {"code": {"entrypoint": entrypoint}}},
    }
    async with AgentHarness(manifest=manifest, model=note_model("from a factory")) as kit:
        output = await kit.ask("Note it")

    assert output == "done"
    assert [value for value in kit.database.collection("notes").values()] == [
        {"text": "from a factory", "by": "tester"}
    ]
    assert kit.config.name == "notes" and kit.config.spec.agent.code is not None
    assert kit.config.spec.agent.code.entrypoint == entrypoint


def test_an_entrypoint_that_does_not_import_names_the_field() -> None:
    with pytest.raises(
        EntrypointError, match="spec.agent.code.entrypoint: no_such_package.agent:agent: no module named"
    ):
        AgentHarness("no_such_package.agent:agent")
    with pytest.raises(ValueError, match="no agent: pass the entrypoint"):
        AgentHarness(manifest={"spec": {"agent": {"model": "test"}}})


def test_a_bad_spec_fails_at_construction_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="replicas"):
        AgentHarness(notes, spec={"replicas": -1})


async def test_the_spec_applies_over_the_test_defaults_and_the_manifests_issuer_is_kept() -> None:
    manifest = {
        "spec": {
            "agent": {"code": {"entrypoint": f"{__name__}:notes"}},
            "security": {
                "auth": {
                    "publicKeySecretRef": {"name": "idp", "key": "pem"},
                    "algorithms": ["RS256"],
                    "audience": "support",
                },
                "authorization": {"allowedRoles": ["admin"]},
            },
        }
    }
    async with AgentHarness(manifest=manifest, model=note_model()) as kit:
        operator = await kit.run("hi", roles=("agent_operator",))
        admin = await kit.run("hi", roles=("admin",))
        foreign = await kit.client.post(
            "/v1/run",
            json={"prompt": "hi"},
            headers={"Authorization": "Bearer " + mint_token(key=kit.jwt_key, subject="x", roles=["admin"])},
        )

    assert kit.config.spec.security.auth.audience == "support"
    assert (operator.status_code, admin.status_code, foreign.status_code) == (403, 200, 401)


async def test_real_model_requests_are_refused_unless_allowed() -> None:
    spec = {
        "agent": {
            "model": "openai-chat:gpt-4o-mini",
            "endpoint": {"baseURL": "http://127.0.0.1:9/v1", "apiKeySecretRef": {"name": "llm", "key": "k"}},
        }
    }
    async with AgentHarness(notes, spec=spec) as kit:
        answer = await kit.run("hi")
        with pytest.raises(HarnessError, match="answered 5"):
            await kit.ask("hi")

    assert answer.status_code >= 500
    assert "Model requests are not allowed" in answer.text or answer.json()["error"]


async def test_the_harness_is_refused_before_it_starts_and_after_it_stops() -> None:
    kit = AgentHarness(notes, model=note_model())
    with pytest.raises(RuntimeError, match="not started"):
        await kit.run("hi")
    async with kit:
        assert (await kit.client.get("/readyz")).status_code == 200
    with pytest.raises(RuntimeError, match="not started"):
        assert kit.runtime


async def test_the_external_api_reaches_the_tools_and_shows_in_health() -> None:
    api = ScriptedExternalApi().reply("GET", "/ping", json={"pong": True})
    async with AgentHarness(notes, model=note_model(), external_api=api) as kit:
        health = (await kit.client.get("/health", headers=kit.headers("admin"))).json()
        assert kit.services.external_api is api
        assert (await api.request("GET", "/ping")).json() == {"pong": True}

    assert "externalAPI" in json.dumps(health)


STANDALONE = """
import asyncio, sys
sys.modules["pytest"] = None  # a project without pytest: importing it fails
sys.modules["tests"] = None   # and without this repository's tests
from pydantic_ai.models.test import TestModel
from agent_runtime.testing import AgentHarness
from pydantic_ai import Agent

async def main():
    async with AgentHarness(Agent(name="plain"), model=TestModel(custom_output_text="hello")) as kit:
        print(await kit.ask("hi"), len(await kit.audit()))

asyncio.run(main())
"""


def test_the_kit_works_in_a_project_with_only_the_runtime_installed(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-I", "-c", STANDALONE], capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "hello 1"


async def test_an_agent_that_names_its_own_model_starts_when_the_model_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    own = Agent("openai-chat:gpt-4o-mini", deps_type=AgentryDeps, defer_model_check=True)
    async with AgentHarness(own, model=TestModel(custom_output_text="replaced")) as kit:
        assert await kit.ask("hi") == "replaced"
