"""The audit hash chain: how a record's hash is computed, and how a stored trail is verified.

Each row stores `hash = sha256(prev_hash + canonical JSON of record)` with `prev_hash` the hash of
the row before (64 zeros for the first). Editing a record changes its hash; deleting, inserting or
reordering rows breaks the link from one row to the next or the run of sequence numbers. What a
chain alone cannot show is the loss of its newest rows, or a trail rewritten wholesale by someone
who recomputes every hash: for that the runtime also writes checkpoints (seq and hash) to its log
stream, which lives outside the database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..services.protocols import AuditRow

GENESIS = "0" * 64


def canonical_json(record: Mapping[str, Any]) -> str:
    """One spelling per record: sorted keys, no spaces, UTF-8 kept, NaN refused."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def chain_hash(prev_hash: str, record: Mapping[str, Any]) -> str:
    """The hash of a record at its place in the chain."""
    return hashlib.sha256((prev_hash + canonical_json(record)).encode()).hexdigest()


def link(*, seq: int, prev_hash: str, record: Mapping[str, Any]) -> AuditRow:
    """The stored row of `record` after the row whose hash is `prev_hash`."""
    return AuditRow(seq=seq, prev_hash=prev_hash, hash=chain_hash(prev_hash, record), record=record)


@dataclass(frozen=True)
class VerifyReport:
    """The verdict on a trail: how far it checked out, and where and why it broke."""

    ok: bool
    checked: int
    first_bad_seq: int | None
    message: str


class ChainVerifier:
    """Checks rows one at a time (so a long trail streams through in constant memory).

    By default the trail must start at seq 1 after the genesis hash; `after` starts the check
    after a known-good row instead (a trail whose head was archived).
    """

    def __init__(self, *, after: AuditRow | None = None) -> None:
        self._next_seq = 1 if after is None else after.seq + 1
        self._prev_hash = GENESIS if after is None else after.hash
        self._checked = 0
        self._failure: VerifyReport | None = None

    def feed(self, row: AuditRow) -> bool:
        """Check the next row; False once the chain is broken (later rows are then ignored)."""
        if self._failure is not None:
            return False
        problem = self._problem(row)
        if problem is not None:
            self._failure = VerifyReport(ok=False, checked=self._checked, first_bad_seq=row.seq, message=problem)
            return False
        self._checked += 1
        self._next_seq, self._prev_hash = row.seq + 1, row.hash
        return True

    def report(self) -> VerifyReport:
        """The verdict on everything fed so far."""
        if self._failure is not None:
            return self._failure
        if self._checked == 0:
            return VerifyReport(ok=True, checked=0, first_bad_seq=None, message="audit trail is empty")
        last = self._next_seq - 1
        return VerifyReport(
            ok=True,
            checked=self._checked,
            first_bad_seq=None,
            message=f"audit chain intact: {self._checked} records, last seq {last}, last hash {self._prev_hash}",
        )

    def _problem(self, row: AuditRow) -> str | None:
        if row.seq != self._next_seq:
            return f"seq {row.seq} found where {self._next_seq} was expected: a record was deleted or reordered"
        if row.prev_hash != self._prev_hash:
            return f"seq {row.seq}: prev_hash does not match the previous record: a record was deleted or reordered"
        try:
            expected = chain_hash(row.prev_hash, row.record)
        except (TypeError, ValueError):
            return f"seq {row.seq}: the record is not canonical JSON: it was edited"
        if row.hash != expected:
            return f"seq {row.seq}: hash does not match the record's content: the record was edited"
        return None


def verify_chain(rows: Iterable[AuditRow], *, after: AuditRow | None = None) -> VerifyReport:
    """Verify rows given in seq order (as AuditStore.iter_audit yields them)."""
    verifier = ChainVerifier(after=after)
    for row in rows:
        if not verifier.feed(row):
            break
    return verifier.report()
