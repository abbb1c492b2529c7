"""The PostgreSQL database: run results and the audit trail shared by every replica (asyncpg pool)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import asyncpg

from .protocols import AuditLinker, AuditRow, ConversationLease, Json, ServiceHealth
from .traced import Traceable, traced

SCHEMA = """
CREATE TABLE IF NOT EXISTS run_results (
    run_id TEXT PRIMARY KEY,
    result JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS audit_log (
    seq BIGINT PRIMARY KEY,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    record TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS agent_records (
    collection TEXT NOT NULL,
    key TEXT NOT NULL,
    value JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (collection, key)
);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    messages TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    lease_until DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS conversations_updated_at ON conversations (updated_at);
"""
# The audit record is TEXT, not JSONB: JSONB reorders keys and normalises numbers, and the hash chain
# is checked against the exact bytes that were hashed. A conversation's history is TEXT too: it is read back
# whole and parsed by pydantic-ai, never queried inside. Its times are epoch seconds from the runtime's clock.

#: Rows read per query while iterating the audit trail.
PAGE = 500
#: Serialises CREATE TABLE across replicas starting at once (IF NOT EXISTS alone races on the catalog).
SCHEMA_LOCK_ID = 0x4147454E5452
#: Serialises audit appends across replicas, so each links its batch after the head it reads under the lock.
AUDIT_LOCK_ID = 0x4147454E5441
LAST_AUDIT = "SELECT seq, prev_hash, hash, record FROM audit_log ORDER BY seq DESC LIMIT 1"


class PostgresDatabase(Traceable):
    """A connection pool of `pool_size`; every method takes one connection for one statement."""

    system = "postgresql"

    name = "database"

    def __init__(self, *, url: str, pool_size: int = 5, timeout: float = 5.0) -> None:
        self._url = url
        self._pool_size = pool_size
        self._timeout = timeout
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        """The open pool; raises before start()."""
        if self._pool is None:
            raise RuntimeError("database used before start()")
        return self._pool

    async def start(self) -> None:
        """Open the pool and create the tables; a wrong URL fails here with PostgreSQL's message."""
        try:
            self._pool = await asyncpg.create_pool(
                self._url, min_size=1, max_size=self._pool_size, timeout=self._timeout, command_timeout=30
            )
        except (OSError, asyncpg.PostgresError) as exc:
            raise RuntimeError(f"cannot reach PostgreSQL: {exc}") from exc
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK_ID)
            await conn.execute(SCHEMA)

    async def close(self) -> None:
        """Close the pool, waiting for connections in use; safe to call twice."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def check(self) -> ServiceHealth:
        """SELECT 1 on a pooled connection; never raises."""
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self.pool.fetchval("SELECT 1"), timeout=self._timeout)
        except Exception as exc:
            return ServiceHealth(name=self.name, state="down", detail=f"postgresql: {type(exc).__name__}: {exc}")
        latency = (time.perf_counter() - started) * 1000
        return ServiceHealth(name=self.name, state="ok", detail="postgresql", latency_ms=latency)

    @traced("save_result")
    async def save_result(self, run_id: str, result: Mapping[str, Any]) -> None:
        """Insert or replace the result stored under run_id."""
        await self.pool.execute(
            "INSERT INTO run_results (run_id, result) VALUES ($1, $2::jsonb) "
            "ON CONFLICT (run_id) DO UPDATE SET result = EXCLUDED.result",
            run_id,
            json.dumps(result),
        )

    @traced("get_result")
    async def get_result(self, run_id: str) -> Mapping[str, Any] | None:
        """The stored result, or None."""
        text = await self.pool.fetchval("SELECT result::text FROM run_results WHERE run_id = $1", run_id)
        return None if text is None else dict(json.loads(text))

    async def append_audit(self, link: AuditLinker) -> list[AuditRow]:
        """Under a transaction-scoped advisory lock: read the head, insert `link(head)`; a duplicate seq fails all."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", AUDIT_LOCK_ID)
            head = await conn.fetchrow(LAST_AUDIT)
            rows = link(None if head is None else _row(head))
            values = [(row.seq, row.prev_hash, row.hash, json.dumps(row.record)) for row in rows]
            await conn.executemany(
                "INSERT INTO audit_log (seq, prev_hash, hash, record) VALUES ($1, $2, $3, $4)", values
            )
        return rows

    async def last_audit(self) -> AuditRow | None:
        """The row with the highest seq, or None."""
        row = await self.pool.fetchrow(LAST_AUDIT)
        return None if row is None else _row(row)

    async def iter_audit(self, *, after_seq: int = 0) -> AsyncIterator[AuditRow]:
        """Rows in seq order after `after_seq`, read a page at a time."""
        query = "SELECT seq, prev_hash, hash, record FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
        while True:
            rows = [_row(row) for row in await self.pool.fetch(query, after_seq, PAGE)]
            for row in rows:
                yield row
            if len(rows) < PAGE:
                return
            after_seq = rows[-1].seq

    @traced("put")
    async def put(self, collection: str, key: str, value: Json) -> None:
        """Insert or replace the record."""
        await self.pool.execute(
            "INSERT INTO agent_records (collection, key, value) VALUES ($1, $2, $3::jsonb) "
            "ON CONFLICT (collection, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
            collection,
            key,
            json.dumps(value),
        )

    @traced("get")
    async def get(self, collection: str, key: str) -> Json:
        """The record's value, or None."""
        query = "SELECT value::text FROM agent_records WHERE collection = $1 AND key = $2"
        text = await self.pool.fetchval(query, collection, key)
        return None if text is None else cast(Json, json.loads(text))

    @traced("delete")
    async def delete(self, collection: str, key: str) -> bool:
        """Delete the record; False when there was none."""
        query = "DELETE FROM agent_records WHERE collection = $1 AND key = $2"
        status = await self.pool.execute(query, collection, key)
        return str(status) != "DELETE 0"

    @traced("list")
    async def list(self, collection: str, *, prefix: str = "", limit: int = 100) -> list[tuple[str, Json]]:
        """Records whose key starts with `prefix`, in key order."""
        query = (
            "SELECT key, value::text FROM agent_records WHERE collection = $1 AND starts_with(key, $2) "
            'ORDER BY key COLLATE "C" LIMIT $3'
        )
        rows = await self.pool.fetch(query, collection, prefix, limit)
        return [(str(row[0]), cast(Json, json.loads(row[1]))) for row in rows]

    @traced("lease_conversation")
    async def lease_conversation(
        self, conversation_id: str, owner: str, *, now: float, lease_until: float, fresh_after: float
    ) -> ConversationLease:
        """One UPDATE takes a free lease (row-locked, so two replicas cannot both); a second look tells why not."""
        take = (
            "UPDATE conversations SET lease_until = $1 WHERE id = $2 AND owner = $3 AND updated_at >= $4 "
            "AND (lease_until IS NULL OR lease_until < $5) RETURNING messages"
        )
        messages = await self.pool.fetchval(take, lease_until, conversation_id, owner, fresh_after, now)
        if messages is not None:
            return ConversationLease(state="leased", messages=str(messages))
        look = "SELECT updated_at >= $1 FROM conversations WHERE id = $2 AND owner = $3"
        fresh = await self.pool.fetchval(look, fresh_after, conversation_id, owner)
        if fresh is None:
            return ConversationLease(state="missing")
        if not fresh:
            await self.delete_conversation(conversation_id, owner)
            return ConversationLease(state="missing")
        return ConversationLease(state="busy")

    @traced("save_conversation")
    async def save_conversation(self, conversation_id: str, owner: str, messages: str, *, now: float) -> None:
        """Insert or update the owner's row, releasing the lease; another owner's row is left alone."""
        await self.pool.execute(
            "INSERT INTO conversations (id, owner, messages, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) "
            "DO UPDATE SET messages = EXCLUDED.messages, updated_at = EXCLUDED.updated_at, lease_until = NULL "
            "WHERE conversations.owner = EXCLUDED.owner",
            conversation_id,
            owner,
            messages,
            now,
        )

    @traced("release_conversation")
    async def release_conversation(self, conversation_id: str, owner: str) -> None:
        """Clear the lease."""
        query = "UPDATE conversations SET lease_until = NULL WHERE id = $1 AND owner = $2"
        await self.pool.execute(query, conversation_id, owner)

    @traced("get_conversation")
    async def get_conversation(self, conversation_id: str, owner: str, *, fresh_after: float) -> str | None:
        """The history, or None."""
        query = "SELECT messages FROM conversations WHERE id = $1 AND owner = $2 AND updated_at >= $3"
        text = await self.pool.fetchval(query, conversation_id, owner, fresh_after)
        return None if text is None else str(text)

    @traced("delete_conversation")
    async def delete_conversation(self, conversation_id: str, owner: str) -> bool:
        """Delete the row; False when there was none."""
        status = await self.pool.execute(
            "DELETE FROM conversations WHERE id = $1 AND owner = $2", conversation_id, owner
        )
        return str(status) != "DELETE 0"

    async def expire_conversations(self, *, now: float, fresh_after: float) -> int:
        """Delete expired rows not leased now."""
        query = "DELETE FROM conversations WHERE updated_at < $1 AND (lease_until IS NULL OR lease_until < $2)"
        status = str(await self.pool.execute(query, fresh_after, now))
        return int(status.rsplit(" ", 1)[-1])

    async def count_conversations(self, *, fresh_after: float) -> int:
        """Rows whose last turn is at or after `fresh_after`, of every replica (the updated_at index answers it)."""
        query = "SELECT count(*) FROM conversations WHERE updated_at >= $1"
        return int(await self.pool.fetchval(query, fresh_after))


def _row(row: asyncpg.Record) -> AuditRow:
    return AuditRow(seq=int(row[0]), prev_hash=str(row[1]), hash=str(row[2]), record=json.loads(row[3]))
