"""The container's lifecycle rules, with recording stand-ins (a unit test: the order is the subject)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent_runtime.services.container import ServiceContainer, Services
from agent_runtime.services.memory_cache import MemoryCache
from agent_runtime.services.protocols import ServiceHealth
from agent_runtime.services.sqlite import SqliteDatabase


class RecordingDatabase(SqliteDatabase):
    """A real SQLite database that also records its lifecycle calls and can be told to fail or hang."""

    def __init__(self, path: Path, events: list[str], *, fail: bool = False, hang: bool = False) -> None:
        super().__init__(path=path)
        self.events, self.fail, self.hang = events, fail, hang

    async def start(self) -> None:
        self.events.append("database.start")
        if self.fail:
            raise OSError("disk full")
        await super().start()

    async def close(self) -> None:
        self.events.append("database.close")
        await super().close()

    async def check(self) -> ServiceHealth:
        if self.hang:
            await asyncio.sleep(10)
        return await super().check()


class RecordingCache(MemoryCache):
    """The in-process cache, recording its lifecycle calls."""

    def __init__(self, events: list[str], *, fail: bool = False) -> None:
        super().__init__()
        self.events, self.fail = events, fail

    async def start(self) -> None:
        self.events.append("cache.start")
        if self.fail:
            raise ConnectionError("redis refused")

    async def close(self) -> None:
        self.events.append("cache.close")


def container(
    tmp_path: Path, events: list[str], *, db_fails: bool = False, cache_fails: bool = False, hang: bool = False
) -> ServiceContainer:
    database = RecordingDatabase(tmp_path / "db.sqlite", events, fail=db_fails, hang=hang)
    cache = RecordingCache(events, fail=cache_fails)
    return ServiceContainer(Services(database=database, cache=cache), check_timeout=0.2)


async def test_starts_in_order_and_closes_in_reverse(tmp_path: Path) -> None:
    events: list[str] = []
    services = container(tmp_path, events)
    await services.start()
    assert services.started
    await services.close()
    assert events == ["database.start", "cache.start", "cache.close", "database.close"]
    assert not services.started


async def test_a_failed_start_closes_what_started_and_names_the_service(tmp_path: Path) -> None:
    events: list[str] = []
    services = container(tmp_path, events, cache_fails=True)
    with pytest.raises(RuntimeError, match="service cache failed to start: redis refused"):
        await services.start()
    assert events == ["database.start", "cache.start", "database.close"]


async def test_checks_report_not_started_and_hanging_services_as_down(tmp_path: Path) -> None:
    events: list[str] = []
    services = container(tmp_path, events, hang=True)
    assert [h.detail for h in await services.check()] == ["not started", "not started"]
    await services.start()
    try:
        database, cache = await services.check()
    finally:
        await services.close()
    assert (database.state, database.detail) == ("down", "check timed out after 0.2s")
    assert cache.state == "ok"
