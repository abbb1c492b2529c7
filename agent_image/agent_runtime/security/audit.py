"""The audit trail: one hash-chained record per request, in the database and as JSON lines on a stream.

The caller passes data that is already redacted (the Anonymizer runs first) and never a token, a
key or a raw prompt: a record holds who (the principal's subject, which the caller pseudonymises
when it is personal data such as an email), what happened (outcome, error text, sizes, tokens,
latency) and how many PII values were redacted, not the values themselves.

A record is written to the stream at once (so the log pipeline has it even if the pod dies) and
queued; `flush` stores queued records in one transaction, from a background task every
`flush_interval`, sooner when `batch_size` records wait, and on `close`. Replicas sharing one
PostgreSQL continue one chain: the store links each batch after the head it reads while holding the
trail's write lock, so replicas append one after another and never race for a seq. A batch that
cannot be stored stays queued (nothing is dropped) and `healthy` turns False until a flush works.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from ..services.protocols import AuditRow, AuditStore
from .chain import GENESIS, ChainVerifier, VerifyReport, canonical_json, link, verify_chain

__all__ = ["AuditTrail", "ChainVerifier", "VerifyReport", "verify_chain"]

log = logging.getLogger(__name__)

#: Records stored per transaction; a full batch wakes the flusher before the interval is up.
DEFAULT_BATCH_SIZE = 100
#: Longest a record waits in memory before it is stored.
DEFAULT_FLUSH_INTERVAL = 1.0
#: Times a flush tries to store a batch (a dropped connection, a deadlock) before it gives up for now.
APPEND_ATTEMPTS = 3
#: Longest pause (seconds, drawn at random) before trying again.
APPEND_BACKOFF = 0.05


def utc_now() -> datetime:
    """The wall clock in UTC (audit times are wall-clock times, unlike rate limits)."""
    return datetime.now(UTC)


class AuditTrail:
    """Append-only, hash-chained audit records of one agent."""

    def __init__(
        self,
        store: AuditStore,
        *,
        agent: str,
        stream: TextIO,
        enabled: bool,
        batch_size: int = DEFAULT_BATCH_SIZE,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self._agent = agent
        self._stream = stream
        self.enabled = enabled
        self._batch_size = max(1, batch_size)
        self._flush_interval = flush_interval
        self._clock = clock
        self._pending: list[dict[str, Any]] = []
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.healthy = True
        """False while queued records cannot be stored."""
        self.last_error = ""
        """Why the last flush failed."""
        self.stream_errors = 0
        """JSON lines that could not be written to the stream."""

    @property
    def pending(self) -> int:
        """Records written to the stream but not yet stored."""
        return len(self._pending)

    async def start(self) -> None:
        """Start the background flusher (each flush continues the stored chain after its head)."""
        if not self.enabled:
            return
        self._task = asyncio.create_task(self._flush_loop(), name=f"audit-flush-{self._agent}")

    async def record(
        self,
        *,
        principal: str,
        outcome: str,
        request_bytes: int = 0,
        error: str | None = None,
        latency_ms: float = 0.0,
        tokens_in: int = 0,
        tokens_out: int = 0,
        redactions: Mapping[str, int] | None = None,
        **extra: Any,
    ) -> None:
        """Write one record to the stream and queue it for the store; never raises on store trouble.

        `extra` fields (run id, endpoint, status code) must be JSON values and already redacted.
        """
        if not self.enabled:
            return
        fields = {
            **extra,
            "time": self._clock().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "agent": self._agent,
            "principal": principal,
            "request_bytes": int(request_bytes),
            "outcome": outcome,
            "error": error,
            "latency_ms": round(float(latency_ms), 3),
            "tokens_in": int(tokens_in),
            "tokens_out": int(tokens_out),
            "redactions": dict(redactions or {}),
        }
        entry: dict[str, Any] = json.loads(canonical_json(fields))  # JSON values only, as stored
        self._write_line({"kind": "audit", "record": entry})
        self._pending.append(entry)
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    async def flush(self) -> None:
        """Store every queued record, `batch_size` per transaction; raises (and keeps them) when the store fails."""
        async with self._lock:
            while self._pending:
                batch = self._pending[: self._batch_size]
                rows = await self._append(batch)
                del self._pending[: len(batch)]
                self.healthy, self.last_error = True, ""
                self._write_line(
                    {"kind": "audit_checkpoint", "agent": self._agent, "seq": rows[-1].seq, "hash": rows[-1].hash}
                )

    async def close(self) -> None:
        """Stop the flusher and store what is queued; raises when that last flush fails."""
        task, self._task = self._task, None
        if task is not None:
            # Ask the flusher to stop rather than cancel it: a cancellation can land inside a transaction, and
            # on Python 3.11 `wait_for` may swallow it, leaving close() waiting forever.
            self._stopping = True
            self._wake.set()
            await task
        if self.enabled:
            await self.flush()

    async def _append(self, batch: list[dict[str, Any]]) -> list[AuditRow]:
        for attempt in range(APPEND_ATTEMPTS):
            linked: list[AuditRow] = []

            def link_batch(head: AuditRow | None, linked: list[AuditRow] = linked) -> list[AuditRow]:
                linked[:] = _link(batch, head)
                return linked

            try:
                return await self._store.append_audit(link_batch)
            except Exception:
                if attempt == APPEND_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(random.uniform(0, APPEND_BACKOFF))  # jitter
                if linked and await self._stored(linked[-1]):
                    return linked  # the failure came after the commit: the batch is stored
        raise AssertionError("unreachable")

    async def _stored(self, last: AuditRow) -> bool:
        """Whether the row at `last.seq` is `last` (a commit whose answer was lost); False when that cannot be read."""
        try:
            async for row in self._store.iter_audit(after_seq=last.seq - 1):
                return row.hash == last.hash
        except Exception:
            return False
        return False

    async def _flush_loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_interval):
                    await self._wake.wait()
            self._wake.clear()
            if not self._stopping:
                await self._flush_quietly()

    async def _flush_quietly(self) -> None:
        try:
            await self.flush()
        except Exception as exc:
            if self.healthy:
                log.error(
                    "audit: %d records could not be stored (%s); they stay queued", self.pending, type(exc).__name__
                )
            self.healthy, self.last_error = False, f"{type(exc).__name__}: {exc}"

    def _write_line(self, document: Mapping[str, Any]) -> None:
        """Write one JSON line; a broken stream (closed pipe) must not fail the request or lose the record."""
        try:
            self._stream.write(canonical_json(document) + "\n")
            self._stream.flush()
        except (OSError, ValueError) as exc:
            self.stream_errors += 1
            if self.stream_errors == 1:
                log.error("audit: cannot write to the audit stream (%s); records still go to the store", exc)


def _link(batch: list[dict[str, Any]], head: AuditRow | None) -> list[AuditRow]:
    """The batch's rows, chained after `head` (the genesis hash for an empty trail)."""
    seq, prev_hash = (0, GENESIS) if head is None else (head.seq, head.hash)
    rows = []
    for record in batch:
        seq += 1
        row = link(seq=seq, prev_hash=prev_hash, record=record)
        rows.append(row)
        prev_hash = row.hash
    return rows
