"""What a user's tools see of the services: their records with checked arguments, their own cache keys."""

from __future__ import annotations

import pytest

from agent_runtime.services.container import Services
from agent_runtime.services.memory_cache import MemoryCache
from agent_runtime.services.protocols import Database
from agent_runtime.services.views import APP_CACHE_PREFIX, agent_services


async def test_the_cache_is_the_agents_own_namespace(database: Database) -> None:
    cache = MemoryCache()
    await cache.set("tool:k", "the built-in tools' value")
    mine = agent_services(Services(database=database, cache=cache)).cache
    await mine.set("k", "mine")
    assert await mine.get("k") == "mine"
    assert await cache.get("tool:k") == "the built-in tools' value"
    assert await cache.get(APP_CACHE_PREFIX + "k") == "mine"
    assert await mine.invalidate("*") == 1
    assert await cache.get("tool:k") == "the built-in tools' value"


@pytest.mark.parametrize(
    ("collection", "key", "message"),
    [
        ("", "k", "collection must be a non-empty string of at most 200 characters"),
        ("c" * 201, "k", "collection must be"),
        ("tickets", "", "key must be a non-empty string of at most 500 characters"),
        ("tickets", 5, "key must be"),
    ],
)
async def test_bad_record_arguments_fail_in_the_tool_with_the_argument_named(
    database: Database, collection: str, key: object, message: str
) -> None:
    records = agent_services(Services(database=database, cache=MemoryCache())).database
    with pytest.raises(ValueError, match=message):
        await records.put(collection, key, {"v": 1})  # type: ignore[arg-type]


async def test_list_limit_is_bounded(database: Database) -> None:
    records = agent_services(Services(database=database, cache=MemoryCache())).database
    with pytest.raises(ValueError, match="limit must be between 1 and 1000, not 0"):
        await records.list("tickets", limit=0)
