"""The background count of active conversations: refreshed at its interval, its last value kept when a count fails."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from agent_runtime.conversation_count import ConversationCount
from agent_runtime.services.sqlite import SqliteDatabase
from agent_runtime.testing import MemoryDatabase


async def until(condition: Callable[[], bool], *, what: str) -> None:
    """Wait (at most 5 s) until `condition()` is true."""
    try:
        async with asyncio.timeout(5):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_counts_at_start_then_every_interval_within_the_ttl(tmp_path: Path) -> None:
    database = SqliteDatabase(path=tmp_path / "a.db")
    await database.start()
    await database.save_conversation("expired", "alice", "[]", now=1000 - 61)
    await database.save_conversation("fresh", "alice", "[]", now=1000 - 59)
    count = ConversationCount(store=database, ttl_seconds=60, interval=0.02, timeout=1, clock=lambda: 1000.0)
    count.start()
    try:
        await until(lambda: count.value == 1, what="the first count")
        await database.save_conversation("another", "bob", "[]", now=1000)
        await until(lambda: count.value == 2, what="the next count")
    finally:
        await count.stop()
        await count.stop()
        await database.close()


async def test_a_failing_count_keeps_the_last_value_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = SqliteDatabase(path=tmp_path / "a.db")
    await database.start()
    await database.save_conversation("c", "alice", "[]", now=1000)
    count = ConversationCount(store=database, ttl_seconds=60, interval=1, timeout=1, clock=lambda: 1000.0)
    await count.refresh()
    await database.close()

    with caplog.at_level(logging.INFO, logger="agent_runtime.conversation_count"):
        for _ in range(3):
            await count.refresh()
        assert (count.value, count.failing) == (1, True)
        await database.start()
        await database.save_conversation("d", "bob", "[]", now=1000)
        await count.refresh()
    await database.close()

    assert (count.value, count.failing) == (2, False)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2, messages
    assert messages[0].startswith("counting conversations failed, /health keeps the last count: RuntimeError")
    assert messages[1] == "counting conversations works again"


class SlowStoreFake(MemoryDatabase):
    """A unit-test fake: the kit's database, answering the count only after `delay` seconds."""

    delay = 0.0

    async def count_conversations(self, *, fresh_after: float) -> int:
        await asyncio.sleep(self.delay)
        return await super().count_conversations(fresh_after=fresh_after)


async def test_a_count_slower_than_the_timeout_keeps_the_last_value() -> None:
    store = SlowStoreFake()
    await store.save_conversation("c", "alice", "[]", now=1000)
    count = ConversationCount(store=store, ttl_seconds=60, interval=1, timeout=0.05, clock=lambda: 1000.0)
    await count.refresh()
    await store.save_conversation("d", "alice", "[]", now=1000)
    store.delay = 1.0

    await count.refresh()

    assert (count.value, count.failing) == (1, True)
