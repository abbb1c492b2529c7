"""The Database protocol, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio

import pytest

from agent_runtime.services.protocols import AuditRow, Database


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
    await database.append_audit(rows[:700])
    await database.append_audit(rows[700:])
    assert [row async for row in database.iter_audit()] == rows
    assert [row.seq async for row in database.iter_audit(after_seq=1200)] == [1201, 1202]
    assert await database.last_audit() == rows[-1]


async def test_a_duplicate_seq_fails_the_whole_batch(database: Database) -> None:
    await database.append_audit([AuditRow(seq=1, prev_hash="0", hash="a", record={})])
    with pytest.raises(Exception):  # noqa: B017 - each driver raises its own integrity error
        await database.append_audit(
            [AuditRow(seq=2, prev_hash="a", hash="b", record={}), AuditRow(seq=1, prev_hash="x", hash="y", record={})]
        )
    assert [row.seq async for row in database.iter_audit()] == [1]


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
