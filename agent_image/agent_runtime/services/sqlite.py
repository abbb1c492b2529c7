"""The SQLite database: run results and the audit trail in a file on the pod's volume (no PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, cast

import aiosqlite

from .protocols import AuditLinker, AuditRow, ConversationLease, Json, ServiceHealth
from .traced import Traceable, traced

SCHEMA = """
CREATE TABLE IF NOT EXISTS run_results (
    run_id TEXT PRIMARY KEY,
    result TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    record TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS agent_records (
    collection TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (collection, key)
);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    messages TEXT NOT NULL,
    updated_at REAL NOT NULL,
    lease_until REAL
);
CREATE INDEX IF NOT EXISTS conversations_updated_at ON conversations (updated_at);
"""

#: Results committed by one statement at most (two bound values each, far below SQLite's limit).
GROUP_COMMIT_ROWS = 200
#: Rows read per query while iterating the audit trail, so verifying a long trail stays flat in memory.
PAGE = 500


class SqliteDatabase(Traceable):
    """One connection in WAL mode; aiosqlite runs it on its own thread, which serialises writes."""

    system = "sqlite"

    name = "database"

    def __init__(self, *, path: str | Path, timeout: float = 5.0) -> None:
        self.path = Path(path)
        self._timeout = timeout
        self._conn: aiosqlite.Connection | None = None
        self._queue: list[tuple[str, str, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._audit_lock = asyncio.Lock()
        """One audit transaction at a time on the one connection (a second BEGIN inside the first would fail)."""

    @property
    def conn(self) -> aiosqlite.Connection:
        """The open connection; raises before start()."""
        if self._conn is None:
            raise RuntimeError("database used before start()")
        return self._conn

    async def start(self) -> None:
        """Open the file (creating its directory) and the tables."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit: a single-statement write is its own transaction, one hop to the SQLite thread
        # instead of two (execute, commit); multi-row writes open their transaction explicitly.
        self._conn = await aiosqlite.connect(self.path, timeout=self._timeout, isolation_level=None)
        await self._conn.execute("PRAGMA journal_mode=WAL")
        await self._conn.execute("PRAGMA synchronous=NORMAL")
        await self._conn.executescript(SCHEMA)

    async def close(self) -> None:
        """Finish queued writes, then close the connection; safe to call twice."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def check(self) -> ServiceHealth:
        """SELECT 1; never raises."""
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self.conn.execute("SELECT 1"), timeout=self._timeout)
        except Exception as exc:
            return ServiceHealth(name=self.name, state="down", detail=f"sqlite: {type(exc).__name__}: {exc}")
        latency = (time.perf_counter() - started) * 1000
        return ServiceHealth(name=self.name, state="ok", detail=f"sqlite {self.path.name}", latency_ms=latency)

    @traced("save_result")
    async def save_result(self, run_id: str, result: Mapping[str, Any]) -> None:
        """Insert or replace the result stored under run_id; returns once it is committed.

        Concurrent saves are committed together (group commit): one statement and one trip to the
        SQLite thread for all results queued meanwhile, instead of one per result.
        """
        committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((run_id, json.dumps(result), committed))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_queued(), name="sqlite-results-writer")
        await committed

    async def _write_queued(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:GROUP_COMMIT_ROWS], self._queue[GROUP_COMMIT_ROWS:]
            rows = ", ".join(["(?, ?)"] * len(batch))
            values = [value for run_id, text, _ in batch for value in (run_id, text)]
            try:
                await self.conn.execute(f"INSERT OR REPLACE INTO run_results (run_id, result) VALUES {rows}", values)
            except Exception as exc:
                _settle(batch, exc)
            else:
                _settle(batch, None)

    @traced("get_result")
    async def get_result(self, run_id: str) -> Mapping[str, Any] | None:
        """The stored result, or None."""
        async with self.conn.execute("SELECT result FROM run_results WHERE run_id = ?", (run_id,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else dict(json.loads(row[0]))

    async def append_audit(self, link: AuditLinker) -> list[AuditRow]:
        """Holding the write lock (BEGIN IMMEDIATE): read the head, insert `link(head)`; a taken seq rolls back all."""
        async with self._audit_lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                rows = link(await self.last_audit())
                values = [(row.seq, row.prev_hash, row.hash, json.dumps(row.record)) for row in rows]
                await self.conn.executemany(
                    "INSERT INTO audit_log (seq, prev_hash, hash, record) VALUES (?, ?, ?, ?)", values
                )
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            await self.conn.execute("COMMIT")
            return rows

    async def last_audit(self) -> AuditRow | None:
        """The row with the highest seq, or None."""
        query = "SELECT seq, prev_hash, hash, record FROM audit_log ORDER BY seq DESC LIMIT 1"
        async with self.conn.execute(query) as cursor:
            row = await cursor.fetchone()
        return None if row is None else _row(row)

    async def iter_audit(self, *, after_seq: int = 0) -> AsyncIterator[AuditRow]:
        """Rows in seq order after `after_seq`, read a page at a time."""
        query = "SELECT seq, prev_hash, hash, record FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?"
        while True:
            async with self.conn.execute(query, (after_seq, PAGE)) as cursor:
                rows = [_row(row) for row in await cursor.fetchall()]
            for row in rows:
                yield row
            if len(rows) < PAGE:
                return
            after_seq = rows[-1].seq

    @traced("put")
    async def put(self, collection: str, key: str, value: Json) -> None:
        """Insert or replace the record."""
        await self.conn.execute(
            "INSERT INTO agent_records (collection, key, value) VALUES (?, ?, ?) ON CONFLICT (collection, key) "
            "DO UPDATE SET value = excluded.value, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            (collection, key, json.dumps(value)),
        )

    @traced("get")
    async def get(self, collection: str, key: str) -> Json:
        """The record's value, or None."""
        query = "SELECT value FROM agent_records WHERE collection = ? AND key = ?"
        async with self.conn.execute(query, (collection, key)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else cast(Json, json.loads(row[0]))

    @traced("delete")
    async def delete(self, collection: str, key: str) -> bool:
        """Delete the record; False when there was none."""
        query = "DELETE FROM agent_records WHERE collection = ? AND key = ?"
        async with self.conn.execute(query, (collection, key)) as cursor:
            return cursor.rowcount > 0

    @traced("list")
    async def list(self, collection: str, *, prefix: str = "", limit: int = 100) -> list[tuple[str, Json]]:
        """Records whose key starts with `prefix`, in key order."""
        query = (
            "SELECT key, value FROM agent_records WHERE collection = ? AND substr(key, 1, length(?)) = ? "
            "ORDER BY key LIMIT ?"
        )
        async with self.conn.execute(query, (collection, prefix, prefix, limit)) as cursor:
            rows = await cursor.fetchall()
        return [(str(row[0]), cast(Json, json.loads(row[1]))) for row in rows]

    @traced("lease_conversation")
    async def lease_conversation(
        self, conversation_id: str, owner: str, *, now: float, lease_until: float, fresh_after: float
    ) -> ConversationLease:
        """One UPDATE takes a free lease and returns the history; a second look tells busy from missing."""
        take = (
            "UPDATE conversations SET lease_until = ? WHERE id = ? AND owner = ? AND updated_at >= ? "
            "AND (lease_until IS NULL OR lease_until < ?) RETURNING messages"
        )
        # Stepped to its end in one call: an UPDATE ... RETURNING left half-read keeps its write open, and the
        # audit trail's BEGIN on this connection would then fail.
        rows = list(await self.conn.execute_fetchall(take, (lease_until, conversation_id, owner, fresh_after, now)))
        if rows:
            return ConversationLease(state="leased", messages=str(rows[0][0]))
        look = "SELECT updated_at >= ? FROM conversations WHERE id = ? AND owner = ?"
        async with self.conn.execute(look, (fresh_after, conversation_id, owner)) as cursor:
            found = await cursor.fetchone()
        if found is None:
            return ConversationLease(state="missing")
        if not found[0]:
            await self.delete_conversation(conversation_id, owner)
            return ConversationLease(state="missing")
        return ConversationLease(state="busy")

    @traced("save_conversation")
    async def save_conversation(self, conversation_id: str, owner: str, messages: str, *, now: float) -> None:
        """Insert or update the owner's row, releasing the lease; another owner's row is left alone."""
        await self.conn.execute(
            "INSERT INTO conversations (id, owner, messages, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) "
            "DO UPDATE SET messages = excluded.messages, updated_at = excluded.updated_at, lease_until = NULL "
            "WHERE conversations.owner = excluded.owner",
            (conversation_id, owner, messages, now),
        )

    @traced("release_conversation")
    async def release_conversation(self, conversation_id: str, owner: str) -> None:
        """Clear the lease."""
        query = "UPDATE conversations SET lease_until = NULL WHERE id = ? AND owner = ?"
        await self.conn.execute(query, (conversation_id, owner))

    @traced("get_conversation")
    async def get_conversation(self, conversation_id: str, owner: str, *, fresh_after: float) -> str | None:
        """The history, or None."""
        query = "SELECT messages FROM conversations WHERE id = ? AND owner = ? AND updated_at >= ?"
        async with self.conn.execute(query, (conversation_id, owner, fresh_after)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else str(row[0])

    @traced("delete_conversation")
    async def delete_conversation(self, conversation_id: str, owner: str) -> bool:
        """Delete the row; False when there was none."""
        query = "DELETE FROM conversations WHERE id = ? AND owner = ?"
        async with self.conn.execute(query, (conversation_id, owner)) as cursor:
            return cursor.rowcount > 0

    async def expire_conversations(self, *, now: float, fresh_after: float) -> int:
        """Delete expired rows not leased now."""
        query = "DELETE FROM conversations WHERE updated_at < ? AND (lease_until IS NULL OR lease_until < ?)"
        async with self.conn.execute(query, (fresh_after, now)) as cursor:
            return cursor.rowcount

    async def count_conversations(self, *, fresh_after: float) -> int:
        """Rows whose last turn is at or after `fresh_after` (the updated_at index answers it)."""
        query = "SELECT count(*) FROM conversations WHERE updated_at >= ?"
        async with self.conn.execute(query, (fresh_after,)) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row is not None else 0


def _row(row: Any) -> AuditRow:
    return AuditRow(seq=int(row[0]), prev_hash=str(row[1]), hash=str(row[2]), record=json.loads(row[3]))


def _settle(batch: list[tuple[str, str, asyncio.Future[None]]], error: Exception | None) -> None:
    """Wake the savers of a batch; a saver that gave up (timed out) is skipped."""
    for _, _, committed in batch:
        if committed.done():
            continue
        if error is None:
            committed.set_result(None)
        else:
            committed.set_exception(error)
