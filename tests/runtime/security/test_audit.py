from __future__ import annotations

import asyncio
import dataclasses
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from agent_runtime.security.audit import AuditTrail, verify_chain
from agent_runtime.security.chain import GENESIS, chain_hash
from agent_runtime.security.pii import Anonymizer
from agent_runtime.services.protocols import AuditLinker, AuditRow
from agentry_api.v1alpha1 import PrivacySpec


class FakeAuditStore:
    """An in-memory AuditStore for unit tests: unique seq like the real tables, and a failure switch."""

    def __init__(self) -> None:
        self.rows: list[AuditRow] = []
        self.fail = False
        self.appends = 0

    async def append_audit(self, link: AuditLinker) -> list[AuditRow]:
        self.appends += 1
        if self.fail:
            raise ConnectionError("database unreachable")
        rows = link(max(self.rows, key=lambda row: row.seq, default=None))
        taken = {row.seq for row in self.rows}
        if any(row.seq in taken for row in rows):
            raise ValueError("duplicate seq")
        self.rows.extend(rows)
        return rows

    async def last_audit(self) -> AuditRow | None:
        if self.fail:
            raise ConnectionError("database unreachable")
        return max(self.rows, key=lambda row: row.seq, default=None)

    async def iter_audit(self, *, after_seq: int = 0) -> AsyncIterator[AuditRow]:
        for row in sorted(self.rows, key=lambda row: row.seq):
            if row.seq > after_seq:
                yield row


def fixed_clock() -> datetime:
    return datetime(2026, 11, 26, 8, 0, 0, 123000, tzinfo=UTC)


def trail(store: FakeAuditStore, stream: io.StringIO | None = None, **kwargs: Any) -> AuditTrail:
    options: dict[str, Any] = {"agent": "team-a/support", "enabled": True, "clock": fixed_clock, **kwargs}
    return AuditTrail(store, stream=stream or io.StringIO(), **options)


async def filled(count: int = 5) -> FakeAuditStore:
    store = FakeAuditStore()
    audit = trail(store)
    await audit.start()
    for index in range(count):
        await audit.record(principal=f"user-{index}", outcome="ok", request_bytes=10 * index, latency_ms=1.5)
    await audit.close()
    return store


async def test_records_are_chained_and_verify() -> None:
    store = await filled(5)
    assert [row.seq for row in store.rows] == [1, 2, 3, 4, 5]
    assert store.rows[0].prev_hash == GENESIS
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(store.rows, store.rows[1:], strict=False))
    report = verify_chain(store.rows)
    assert report.ok and report.checked == 5 and report.first_bad_seq is None


async def test_a_record_holds_the_documented_fields() -> None:
    store = FakeAuditStore()
    audit = trail(store)
    await audit.record(
        principal="alice", outcome="error", request_bytes=42, error="timeout", latency_ms=12.3456,
        tokens_in=7, tokens_out=9, redactions={"email": 2}, run_id="r1",
    )  # fmt: skip
    await audit.flush()
    assert dict(store.rows[0].record) == {
        "time": "2026-11-26T08:00:00.123Z",
        "agent": "team-a/support",
        "principal": "alice",
        "request_bytes": 42,
        "outcome": "error",
        "error": "timeout",
        "latency_ms": 12.346,
        "tokens_in": 7,
        "tokens_out": 9,
        "redactions": {"email": 2},
        "run_id": "r1",
    }


def edited(rows: list[AuditRow]) -> list[AuditRow]:
    changed = [*rows]
    changed[2] = dataclasses.replace(rows[2], record={**rows[2].record, "outcome": "ok-but-edited"})
    return changed


def deleted(rows: list[AuditRow]) -> list[AuditRow]:
    return rows[:2] + rows[3:]


def renumbered_after_delete(rows: list[AuditRow]) -> list[AuditRow]:
    return rows[:2] + [dataclasses.replace(row, seq=row.seq - 1) for row in rows[3:]]


def swapped(rows: list[AuditRow]) -> list[AuditRow]:
    """Two rows exchange their place: each keeps its columns but takes the other's seq."""
    third, fourth = rows[2], rows[3]
    return [*rows[:2], dataclasses.replace(fourth, seq=3), dataclasses.replace(third, seq=4), *rows[4:]]


def swapped_content(rows: list[AuditRow]) -> list[AuditRow]:
    third, fourth = rows[2], rows[3]
    exchanged = [dataclasses.replace(third, record=fourth.record), dataclasses.replace(fourth, record=third.record)]
    return [*rows[:2], *exchanged, *rows[4:]]


def rehashed_edit(rows: list[AuditRow]) -> list[AuditRow]:
    """The forger recomputes the edited row's hash but not the rest of the chain."""
    record = {**rows[2].record, "principal": "nobody"}
    changed = [*rows]
    changed[2] = dataclasses.replace(rows[2], record=record, hash=chain_hash(rows[2].prev_hash, record))
    return changed


def inserted(rows: list[AuditRow]) -> list[AuditRow]:
    extra = AuditRow(seq=3, prev_hash=rows[1].hash, hash=chain_hash(rows[1].hash, {"x": 1}), record={"x": 1})
    return [*rows[:2], extra, *[dataclasses.replace(row, seq=row.seq + 1) for row in rows[2:]]]


def non_json(rows: list[AuditRow]) -> list[AuditRow]:
    changed = [*rows]
    changed[2] = dataclasses.replace(rows[2], record={"latency_ms": float("nan")})
    return changed


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "checked", "words"),
    [
        (edited, 3, 2, "edited"),
        (deleted, 4, 2, "deleted or reordered"),
        (renumbered_after_delete, 3, 2, "deleted or reordered"),
        (swapped, 3, 2, "deleted or reordered"),
        (swapped_content, 3, 2, "edited"),
        (rehashed_edit, 4, 3, "deleted or reordered"),
        (inserted, 4, 3, "deleted or reordered"),
        (non_json, 3, 2, "edited"),
        (lambda rows: rows[1:], 2, 0, "deleted or reordered"),
    ],
    ids=["edited", "deleted", "renumbered", "swapped", "swapped-content", "rehashed", "inserted", "nan", "head-cut"],
)
async def test_tampering_is_detected(tamper: Any, bad_seq: int, checked: int, words: str) -> None:
    rows = (await filled(6)).rows
    report = verify_chain(tamper(rows))
    assert not report.ok
    assert report.first_bad_seq == bad_seq
    assert words in report.message
    assert report.checked == checked


def test_empty_trail_is_ok() -> None:
    report = verify_chain([])
    assert report.ok and report.checked == 0 and "empty" in report.message


async def test_verify_can_start_after_an_archived_head() -> None:
    rows = (await filled(6)).rows
    assert verify_chain(rows[3:], after=rows[2]).ok
    assert not verify_chain(rows[3:]).ok


async def test_start_continues_the_stored_chain() -> None:
    store = await filled(3)
    audit = trail(store)
    await audit.start()
    await audit.record(principal="later", outcome="ok")
    await audit.close()
    assert [row.seq for row in store.rows] == [1, 2, 3, 4]
    assert verify_chain(store.rows).ok


async def test_two_replicas_share_one_chain() -> None:
    store = FakeAuditStore()
    first, second = trail(store), trail(store)
    await first.start()
    await second.start()
    for index in range(3):
        await first.record(principal=f"a{index}", outcome="ok")
        await second.record(principal=f"b{index}", outcome="ok")
        await first.flush()
        await second.flush()
    await first.close()
    await second.close()
    assert len(store.rows) == 6
    assert verify_chain(sorted(store.rows, key=lambda row: row.seq)).ok


async def test_store_failure_keeps_records_queued_and_reports_unhealthy() -> None:
    store = FakeAuditStore()
    stream = io.StringIO()
    audit = trail(store, stream, flush_interval=0.01, batch_size=1)
    await audit.start()
    store.fail = True
    await audit.record(principal="alice", outcome="ok")
    await audit.record(principal="bob", outcome="ok")
    for _ in range(50):
        if not audit.healthy:
            break
        await asyncio.sleep(0.01)
    assert not audit.healthy and "ConnectionError" in audit.last_error
    assert audit.pending == 2
    store.fail = False
    await audit.close()
    assert audit.healthy and audit.pending == 0
    assert [row.record["principal"] for row in store.rows] == ["alice", "bob"]
    assert verify_chain(store.rows).ok


async def test_close_raises_when_the_last_flush_fails() -> None:
    store = FakeAuditStore()
    audit = trail(store)
    await audit.record(principal="alice", outcome="ok")
    store.fail = True
    with pytest.raises(ConnectionError):
        await audit.close()
    assert audit.pending == 1


async def test_batch_size_wakes_the_flusher() -> None:
    store = FakeAuditStore()
    audit = trail(store, batch_size=2, flush_interval=3600)
    await audit.start()
    await audit.record(principal="a", outcome="ok")
    await audit.record(principal="b", outcome="ok")
    for _ in range(100):
        if store.rows:
            break
        await asyncio.sleep(0.01)
    assert len(store.rows) == 2 and store.appends == 1
    await audit.close()


async def test_stream_gets_records_and_checkpoints_without_raw_pii() -> None:
    privacy = PrivacySpec.model_validate({"mode": "hmac", "hmacKeySecretRef": {"name": "p", "key": "k"}})
    anonymizer = Anonymizer(privacy, b"k" * 32)
    stream = io.StringIO()
    store = FakeAuditStore()
    audit = trail(store, stream)
    error = anonymizer.redact_text("no account for jane.doe@example.com (SSN 123-45-6789)")
    principal = anonymizer.redact_text("jane.doe@example.com").text
    await audit.record(principal=principal, outcome="error", error=error.text, redactions=error.counts)
    await audit.close()
    output = stream.getvalue()
    assert "jane.doe@example.com" not in output and "123-45-6789" not in output
    lines = [json.loads(line) for line in output.splitlines()]
    assert [line["kind"] for line in lines] == ["audit", "audit_checkpoint"]
    assert lines[0]["record"]["redactions"] == {"email": 1, "ssn": 1}
    assert lines[1]["seq"] == 1 and lines[1]["hash"] == store.rows[0].hash
    assert lines[0]["record"] == dict(store.rows[0].record)


async def test_disabled_trail_records_nothing() -> None:
    store = FakeAuditStore()
    stream = io.StringIO()
    audit = trail(store, stream, enabled=False)
    await audit.start()
    await audit.record(principal="alice", outcome="ok")
    await audit.close()
    assert store.rows == [] and stream.getvalue() == ""


async def test_record_refuses_non_json_values() -> None:
    audit = trail(FakeAuditStore())
    with pytest.raises(ValueError):
        await audit.record(principal="alice", outcome="ok", latency_ms=float("nan"))
    with pytest.raises(TypeError):
        await audit.record(principal="alice", outcome="ok", extra=object())


class BrokenStream(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError("stdout closed")


async def test_a_broken_stream_does_not_lose_the_record() -> None:
    store = FakeAuditStore()
    audit = trail(store, BrokenStream())
    await audit.record(principal="alice", outcome="ok")
    await audit.close()
    assert len(store.rows) == 1 and audit.stream_errors == 2


async def test_a_long_backlog_is_stored_in_batches() -> None:
    store = FakeAuditStore()
    stream = io.StringIO()
    audit = trail(store, stream, batch_size=4)
    for index in range(10):
        await audit.record(principal=f"user-{index}", outcome="ok")
    await audit.flush()
    assert store.appends == 3 and len(store.rows) == 10
    checkpoints = [json.loads(line) for line in stream.getvalue().splitlines() if "audit_checkpoint" in line]
    assert [checkpoint["seq"] for checkpoint in checkpoints] == [4, 8, 10]
    assert verify_chain(store.rows).ok


@pytest.mark.services
async def test_replicas_flushing_at_once_into_one_postgresql_store_every_record(postgres_url: str) -> None:
    """Four replicas (a rollout's old and new pods) record and flush into one chain at once, then stop."""
    from agent_runtime.services.postgres import PostgresDatabase

    databases = [PostgresDatabase(url=postgres_url) for _ in range(4)]
    for database in databases:
        await database.start()
    trails = [
        AuditTrail(db, agent="team-a/support", stream=io.StringIO(), enabled=True, batch_size=5, flush_interval=0.005)
        for db in databases
    ]
    try:
        for audit in trails:
            await audit.start()

        async def serve(replica: int, audit: AuditTrail) -> None:
            for index in range(60):
                await audit.record(principal=f"r{replica}-{index}", outcome="ok")
                await asyncio.sleep(0.001)

        await asyncio.gather(*(serve(replica, audit) for replica, audit in enumerate(trails)))
        await asyncio.gather(*(audit.close() for audit in trails))  # the final flushes race too
        rows = [row async for row in databases[0].iter_audit()]
    finally:
        for database in databases:
            await database.close()
    assert len(rows) == 240
    assert sorted(row.record["principal"] for row in rows) == sorted(f"r{r}-{i}" for r in range(4) for i in range(60))
    assert verify_chain(rows).ok
