"""The testing kit: in-memory services that keep the production contracts and record calls; the harness."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from agent_runtime.services.breaker import CircuitOpenError
from agent_runtime.services.http import ExternalApiError
from agent_runtime.services.protocols import Cache, Database
from agent_runtime.services.sqlite import SqliteDatabase
from agent_runtime.services.views import AppCache, Records
from agent_runtime.testing import Call, MemoryDatabase, RecordingCache, Reply, ScriptedExternalApi

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
        await Records(store).put("tickets", "T-1", {"when": object()})  # type: ignore[dict-item]


async def test_a_stored_value_is_a_copy_not_the_tools_object(store: Database) -> None:
    value: dict[str, Any] = {"tags": ["a"]}
    await store.put("tickets", "T-1", value)
    value["tags"].append("b")
    got = await store.get("tickets", "T-1")
    assert got == {"tags": ["a"]}
    assert isinstance(got, dict)
    got["tags"].append("c")
    assert await store.get("tickets", "T-1") == {"tags": ["a"]}


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
