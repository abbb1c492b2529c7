"""The Database protocol, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio

import pytest

from agent_runtime.services.protocols import AuditLinker, AuditRow, Database


async def test_results_round_trip(database: Database) -> None:
    await database.save_result("r1", {"output": {"n": 1}, "prompt": "hi"})
    assert await database.get_result("r1") == {"output": {"n": 1}, "prompt": "hi"}
    assert await database.get_result("missing") is None


async def test_saving_again_replaces(database: Database) -> None:
    await database.save_result("r1", {"v": 1})
    await database.save_result("r1", {"v": 2})
    assert await database.get_result("r1") == {"v": 2}


async def test_audit_rows_append_and_iterate_in_order(database: Database) -> None:
    assert await database.last_audit() is None
    rows = [AuditRow(seq=i, prev_hash=f"h{i - 1}", hash=f"h{i}", record={"i": i, "x": 1.5}) for i in range(1, 1203)]
    heads: list[AuditRow | None] = []

    def link(batch: list[AuditRow]) -> AuditLinker:
        def linker(head: AuditRow | None) -> list[AuditRow]:
            heads.append(head)
            return batch

        return linker

    assert await database.append_audit(link(rows[:700])) == rows[:700]
    await database.append_audit(link(rows[700:]))
    assert heads == [None, rows[699]]  # each batch is linked after the head read in its transaction
    assert [row async for row in database.iter_audit()] == rows
    assert [row.seq async for row in database.iter_audit(after_seq=1200)] == [1201, 1202]
    assert await database.last_audit() == rows[-1]


async def test_a_duplicate_seq_fails_the_whole_batch(database: Database) -> None:
    await database.append_audit(lambda head: [AuditRow(seq=1, prev_hash="0", hash="a", record={})])
    taken = [AuditRow(seq=2, prev_hash="a", hash="b", record={}), AuditRow(seq=1, prev_hash="x", hash="y", record={})]
    with pytest.raises(Exception):  # noqa: B017 - each driver raises its own integrity error
        await database.append_audit(lambda head: taken)
    assert [row.seq async for row in database.iter_audit()] == [1]


async def test_concurrent_audit_appends_each_follow_the_last(database: Database) -> None:
    """Appends at once (a pool's connections, like replicas) are serialised: each links after the one before."""

    def after(head: AuditRow | None) -> list[AuditRow]:
        seq, prev = (0, "genesis") if head is None else (head.seq, head.hash)
        return [AuditRow(seq=seq + 1, prev_hash=prev, hash=f"h{seq + 1}", record={})]

    await asyncio.gather(*(database.append_audit(after) for _ in range(20)))
    rows = [row async for row in database.iter_audit()]
    assert [row.seq for row in rows] == list(range(1, 21))
    assert all(row.prev_hash == before.hash for before, row in zip(rows, rows[1:], strict=False))


async def test_check_reports_ok_with_latency(database: Database) -> None:
    health = await database.check()
    assert health.state == "ok"
    assert health.name == "database"
    assert health.latency_ms >= 0


async def test_check_after_close_is_down_not_raised(database: Database) -> None:
    await database.close()
    health = await database.check()
    assert health.state == "down"


async def test_concurrent_saves_are_all_committed(database: Database) -> None:
    await asyncio.gather(*(database.save_result(f"r{i}", {"i": i}) for i in range(450)))
    assert [await database.get_result(f"r{i}") for i in (0, 199, 200, 449)] == [
        {"i": 0},
        {"i": 199},
        {"i": 200},
        {"i": 449},
    ]


# --- the records of a user's tools ---------------------------------------------------------------


@pytest.mark.parametrize("value", [{"title": "t", "tags": ["a"], "n": 1.5}, ["x", 2], "text", 7, True, None])
async def test_records_round_trip_any_json(database: Database, value: object) -> None:
    await database.put("tickets", "T-1", value)  # type: ignore[arg-type]
    assert await database.get("tickets", "T-1") == value


async def test_records_replace_delete_and_stay_in_their_collection(database: Database) -> None:
    await database.put("tickets", "T-1", {"v": 1})
    await database.put("tickets", "T-1", {"v": 2})
    await database.put("notes", "T-1", {"other": True})
    assert await database.get("tickets", "T-1") == {"v": 2}
    assert await database.delete("tickets", "T-1") is True
    assert await database.delete("tickets", "T-1") is False
    assert await database.get("tickets", "T-1") is None
    assert await database.get("notes", "T-1") == {"other": True}


async def test_records_list_by_prefix_in_key_order_with_a_limit(database: Database) -> None:
    for key in ["b-2", "a-1", "b-1", "b_3", "c"]:
        await database.put("tickets", key, key)
    assert await database.list("tickets", prefix="b-") == [("b-1", "b-1"), ("b-2", "b-2")]
    assert [key for key, _ in await database.list("tickets", limit=2)] == ["a-1", "b-1"]
    assert await database.list("tickets", prefix="%") == []
    assert await database.list("empty") == []


async def test_conversations_are_counted_while_fresh_of_every_owner(database: Database) -> None:
    assert await database.count_conversations(fresh_after=0) == 0
    for number, (owner, at) in enumerate([("alice", 100.0), ("bob", 200.0), ("alice", 300.0)]):
        await database.save_conversation(f"c{number}", owner, "[]", now=at)
    await database.lease_conversation("c2", "alice", now=300, lease_until=400, fresh_after=0)

    assert await database.count_conversations(fresh_after=0) == 3, "a leased conversation is active too"
    assert await database.count_conversations(fresh_after=200) == 2, "one last turned exactly then is still fresh"
    assert await database.count_conversations(fresh_after=301) == 0
    await database.delete_conversation("c1", "bob")
    assert await database.count_conversations(fresh_after=0) == 2
