"""Read-only access to a stored audit trail, for `agentry audit verify`.

Deliberately separate from the runtime's database services: a verifier should need nothing but
SELECT on `audit_log` (it can run with a read-only role) and must never create or migrate tables.
Rows stream in seq order, so a long trail verifies in constant memory.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from ..services.protocols import AuditRow

QUERY = "SELECT seq, prev_hash, hash, record FROM audit_log ORDER BY seq"
#: Rows fetched per round trip from PostgreSQL.
PREFETCH = 1000


def to_row(seq: Any, prev_hash: Any, digest: Any, record: Any) -> AuditRow:
    """One AuditRow from raw columns; a record that is not a JSON object cannot hash right, so it reads as edited."""
    try:
        parsed = json.loads(record)
    except (TypeError, ValueError):
        parsed = None
    if not isinstance(parsed, dict):
        parsed = {"__unreadable_record__": str(record)}
    return AuditRow(seq=int(seq), prev_hash=str(prev_hash), hash=str(digest), record=parsed)


def iter_sqlite(path: str | Path) -> Iterator[AuditRow]:
    """Rows of a SQLite trail, opened read-only; FileNotFoundError when there is no such file."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no SQLite database at {file}")
    connection = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True)
    try:
        for columns in connection.execute(QUERY):
            yield to_row(*columns)
    finally:
        connection.close()


async def iter_postgres(url: str) -> AsyncIterator[AuditRow]:
    """Rows of a PostgreSQL trail through a server-side cursor in a read-only transaction."""
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        async with connection.transaction(readonly=True):
            async for record in connection.cursor(QUERY, prefetch=PREFETCH):
                yield to_row(record[0], record[1], record[2], record[3])
    finally:
        await connection.close()
