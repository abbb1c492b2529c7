"""The service contracts that the runtime's parts are written against.

Each protocol has a production implementation (PostgreSQL, Redis, a real HTTP client) and an
in-process one (SQLite, a TTL dict); agents reach them through `RunContext.deps`, never globals.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias

#: A JSON value, what the records store keeps.
Json: TypeAlias = dict[str, Any] | list[Any] | str | int | float | bool | None

HealthState = Literal["ok", "degraded", "down"]


@dataclass(frozen=True)
class ServiceHealth:
    """One dependency's answer to a health check."""

    name: str
    state: HealthState
    detail: str = ""
    latency_ms: float = 0.0


class Service(Protocol):
    """Something with a lifecycle that the container starts, checks and closes."""

    name: str

    async def start(self) -> None:
        """Connect and create what is needed (tables, pools); raise with a clear message on failure."""

    async def close(self) -> None:
        """Release connections; safe to call twice."""

    async def check(self) -> ServiceHealth:
        """A cheap round trip that tells whether the service works now; never raises."""


@dataclass(frozen=True)
class AuditRow:
    """One stored audit record with its place in the hash chain."""

    seq: int
    prev_hash: str
    hash: str
    record: Mapping[str, Any]


#: Links a batch of audit records after the stored head (None for an empty trail) into the rows to store.
AuditLinker: TypeAlias = Callable[[AuditRow | None], list[AuditRow]]


class AuditStore(Protocol):
    """Append-only storage of the audit chain (the database implements it)."""

    async def append_audit(self, link: AuditLinker) -> list[AuditRow]:
        """In one transaction, holding the trail's write lock: read the head, store and return `link(head)`.

        Replicas sharing the database append one after another, each after the head it read under the
        lock, so they never race for a seq; seq is unique all the same, and a batch with a taken one fails whole.
        """

    async def last_audit(self) -> AuditRow | None:
        """The row with the highest seq, or None for an empty trail."""

    def iter_audit(self, *, after_seq: int = 0) -> AsyncIterator[AuditRow]:
        """Rows in seq order, starting after `after_seq`."""


class RecordStore(Protocol):
    """The records a user's tools keep (agent_runtime.sdk.Database, reached through services/records.py)."""

    async def put(self, collection: str, key: str, value: Json) -> None:
        """Store value under (collection, key), replacing what was there."""

    async def get(self, collection: str, key: str) -> Json:
        """The stored value, or None."""

    async def delete(self, collection: str, key: str) -> bool:
        """Delete the record; False when there was none."""

    async def list(self, collection: str, *, prefix: str = "", limit: int = 100) -> list[tuple[str, Json]]:
        """Records whose key starts with prefix, in key order, at most limit."""


LeaseState = Literal["leased", "busy", "missing"]


@dataclass(frozen=True)
class ConversationLease:
    """The answer to taking a conversation's lease: `messages` (JSON text) only when `state` is leased."""

    state: LeaseState
    messages: str = "[]"


class ConversationStore(Protocol):
    """Conversations: one row each (id, owner, history as JSON, time of the last turn, lease), shared by replicas.

    Times are seconds since the epoch given by the caller, so every backend agrees and tests set the clock.
    A row whose last turn is before `fresh_after` is expired: treated as absent, deleted when met.
    """

    async def lease_conversation(
        self, conversation_id: str, owner: str, *, now: float, lease_until: float, fresh_after: float
    ) -> ConversationLease:
        """Take the lease of the owner's fresh conversation unless another turn holds it (busy); missing otherwise."""

    async def save_conversation(self, conversation_id: str, owner: str, messages: str, *, now: float) -> None:
        """Store the history after a turn (creating the row for a new conversation) and release the lease."""

    async def release_conversation(self, conversation_id: str, owner: str) -> None:
        """Release the lease without storing anything (the turn failed)."""

    async def get_conversation(self, conversation_id: str, owner: str, *, fresh_after: float) -> str | None:
        """The owner's fresh conversation's history (JSON text), or None."""

    async def delete_conversation(self, conversation_id: str, owner: str) -> bool:
        """Delete the owner's conversation; False when there was none."""

    async def expire_conversations(self, *, now: float, fresh_after: float) -> int:
        """Delete every expired conversation whose lease is not held; how many went."""

    async def count_conversations(self, *, fresh_after: float) -> int:
        """How many conversations are fresh (of every owner): one indexed count, for /health and /metrics."""


class Database(Service, AuditStore, RecordStore, ConversationStore, Protocol):
    """Run results, the audit trail, the user's records and the conversations."""

    async def save_result(self, run_id: str, result: Mapping[str, Any]) -> None:
        """Store a run's (already redacted) result under its id."""

    async def get_result(self, run_id: str) -> Mapping[str, Any] | None:
        """The stored result, or None when there is none with that id."""


class Cache(Service, Protocol):
    """A key-value cache with TTLs; Redis also backs the shared rate limits."""

    async def get(self, key: str) -> str | None:
        """The value, or None when absent or expired."""

    async def set(self, key: str, value: str, *, ttl_seconds: float | None = None) -> None:
        """Store value; None ttl means the spec's default TTL."""

    async def invalidate(self, pattern: str) -> int:
        """Delete keys matching a glob pattern (`runs:*`); return how many were deleted."""
