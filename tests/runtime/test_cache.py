"""The Cache protocol against the in-process LRU cache and Redis alike, plus the LRU's own bounds."""

from __future__ import annotations

import asyncio

from agent_runtime.services.memory_cache import MemoryCache
from agent_runtime.services.protocols import Cache
from tests.support.clock import FakeClock


async def test_get_set_and_absent(cache: Cache) -> None:
    assert await cache.get("k") is None
    await cache.set("k", "v")
    assert await cache.get("k") == "v"


async def test_ttl_expires(cache: Cache) -> None:
    await cache.set("short", "v", ttl_seconds=0.05)
    await cache.set("long", "v", ttl_seconds=60)
    await asyncio.sleep(0.15)
    assert await cache.get("short") is None
    assert await cache.get("long") == "v"


async def test_invalidate_by_glob(cache: Cache) -> None:
    for key in ("runs:1", "runs:2", "tool:runs:3", "other"):
        await cache.set(key, "v")
    assert await cache.invalidate("runs:*") == 2
    assert [await cache.get(k) for k in ("runs:1", "runs:2", "tool:runs:3", "other")] == [None, None, "v", "v"]


async def test_check_is_ok(cache: Cache) -> None:
    assert (await cache.check()).state == "ok"


async def test_memory_cache_evicts_least_recently_used() -> None:
    cache = MemoryCache(max_entries=3)
    for key in "abc":
        await cache.set(key, key)
    assert await cache.get("a") == "a"  # a is now the most recently used
    await cache.set("d", "d")
    assert len(cache) == 3
    assert await cache.get("b") is None
    assert [await cache.get(k) for k in "acd"] == ["a", "c", "d"]


async def test_memory_cache_default_ttl_uses_the_clock() -> None:
    clock = FakeClock(0.0)
    cache = MemoryCache(default_ttl_seconds=10, clock=clock)
    await cache.set("k", "v")
    clock.now = 9.9
    assert await cache.get("k") == "v"
    clock.now = 10.0
    assert await cache.get("k") is None
    assert len(cache) == 0
