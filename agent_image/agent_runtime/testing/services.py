"""In-memory services for tests of a user's agent: they behave like the production ones and record every call."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeAlias

import httpx

from ..services.breaker import CircuitBreaker
from ..services.http import ExternalApi
from ..services.memory_cache import MemoryCache
from ..services.protocols import AuditLinker, AuditRow, ConversationLease, Json, ServiceHealth
from ..services.views import APP_CACHE_PREFIX

__all__ = ["Call", "MemoryDatabase", "RecordingCache", "Reply", "ScriptedExternalApi"]


class Call(NamedTuple):
    """One call a service received: the method's name and its arguments by parameter name."""

    method: str
    args: Mapping[str, Any]


class _Recorder:
    """The `calls` list every recording service keeps, with a filter for the usual assertion."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        """Every call in order, including the runtime's own (results, audit); `calls_to` picks one method."""

    def _record(self, method: str, /, **args: Any) -> None:
        self.calls.append(Call(method, copy.deepcopy(args)))

    def calls_to(self, method: str) -> list[Mapping[str, Any]]:
        """The arguments of each call to `method`, in order."""
        return [call.args for call in self.calls if call.method == method]


def _stored(value: Any) -> Any:
    """What a real database gives back: a JSON round trip, so a value no database can store fails here too."""
    return json.loads(json.dumps(value, allow_nan=False))


@dataclass
class _ConversationRow:
    """One stored conversation, as the databases' conversations table holds it."""

    owner: str
    messages: str
    updated_at: float
    lease_until: float | None = None


class MemoryDatabase(_Recorder):
    """Run results, the audit trail and the user's records in dicts, with the production databases' semantics.

    Values are stored as JSON (a tool that stores a datetime fails as it would on PostgreSQL), an audit seq is
    unique (a second append of one seq fails and stores nothing of its batch), records list in key order.
    """

    name = "database"

    def __init__(self) -> None:
        super().__init__()
        self.results: dict[str, Mapping[str, Any]] = {}
        """Stored run results by run id."""
        self.audit_rows: list[AuditRow] = []
        """The stored audit chain, in seq order."""
        self.records: dict[tuple[str, str], Json] = {}
        """The user's records by (collection, key)."""
        self.conversations: dict[str, _ConversationRow] = {}
        """Stored conversations by id."""
        self.started = False

    async def start(self) -> None:
        """Nothing to connect to."""
        self._record("start")
        self.started = True

    async def close(self) -> None:
        """Keep the data, so a test can read it after the runtime stopped."""
        self._record("close")
        self.started = False

    async def check(self) -> ServiceHealth:
        """Ok while started."""
        return ServiceHealth(name=self.name, state="ok" if self.started else "down", detail="in memory")

    async def save_result(self, run_id: str, result: Mapping[str, Any]) -> None:
        """Store a run's result."""
        self._record("save_result", run_id=run_id, result=result)
        self.results[run_id] = _stored(result)

    async def get_result(self, run_id: str) -> Mapping[str, Any] | None:
        """The stored result, or None."""
        self._record("get_result", run_id=run_id)
        found = self.results.get(run_id)
        return None if found is None else copy.deepcopy(found)

    async def append_audit(self, link: AuditLinker) -> list[AuditRow]:
        """Append `link(head)` atomically; a seq already stored (or repeated in the batch) fails the whole batch."""
        rows = link(self.audit_rows[-1] if self.audit_rows else None)
        self._record("append_audit", rows=rows)
        taken = {row.seq for row in self.audit_rows}
        seqs = [row.seq for row in rows]
        if taken.intersection(seqs) or len(set(seqs)) != len(seqs):
            raise ValueError(f"audit seq already stored: {sorted(taken.intersection(seqs)) or seqs}")
        stored = [AuditRow(row.seq, row.prev_hash, row.hash, _stored(dict(row.record))) for row in rows]
        self.audit_rows = sorted([*self.audit_rows, *stored], key=lambda row: row.seq)
        return rows

    async def last_audit(self) -> AuditRow | None:
        """The row with the highest seq, or None."""
        return self.audit_rows[-1] if self.audit_rows else None

    async def iter_audit(self, *, after_seq: int = 0) -> AsyncIterator[AuditRow]:
        """Rows in seq order after `after_seq`."""
        for row in list(self.audit_rows):
            if row.seq > after_seq:
                yield row

    async def put(self, collection: str, key: str, value: Json) -> None:
        """Store the record, replacing what was there."""
        self._record("put", collection=collection, key=key, value=value)
        self.records[(collection, key)] = _stored(value)

    async def get(self, collection: str, key: str) -> Json:
        """The record's value, or None."""
        self._record("get", collection=collection, key=key)
        return copy.deepcopy(self.records.get((collection, key)))

    async def delete(self, collection: str, key: str) -> bool:
        """Delete the record; False when there was none."""
        self._record("delete", collection=collection, key=key)
        if (collection, key) not in self.records:
            return False
        del self.records[(collection, key)]
        return True

    async def lease_conversation(
        self, conversation_id: str, owner: str, *, now: float, lease_until: float, fresh_after: float
    ) -> ConversationLease:
        """Take a free lease of the owner's fresh conversation; busy or missing otherwise (an expired one goes)."""
        self._record("lease_conversation", conversation_id=conversation_id)
        row = self.conversations.get(conversation_id)
        if row is None or row.owner != owner:
            return ConversationLease(state="missing")
        if row.updated_at < fresh_after:
            del self.conversations[conversation_id]
            return ConversationLease(state="missing")
        if row.lease_until is not None and row.lease_until >= now:
            return ConversationLease(state="busy")
        row.lease_until = lease_until
        return ConversationLease(state="leased", messages=row.messages)

    async def save_conversation(self, conversation_id: str, owner: str, messages: str, *, now: float) -> None:
        """Store the history and release the lease; another owner's row is left alone."""
        self._record("save_conversation", conversation_id=conversation_id)
        row = self.conversations.get(conversation_id)
        if row is None:
            self.conversations[conversation_id] = _ConversationRow(owner=owner, messages=messages, updated_at=now)
        elif row.owner == owner:
            row.messages, row.updated_at, row.lease_until = messages, now, None

    async def release_conversation(self, conversation_id: str, owner: str) -> None:
        """Clear the lease."""
        self._record("release_conversation", conversation_id=conversation_id)
        row = self.conversations.get(conversation_id)
        if row is not None and row.owner == owner:
            row.lease_until = None

    async def get_conversation(self, conversation_id: str, owner: str, *, fresh_after: float) -> str | None:
        """The history, or None."""
        row = self.conversations.get(conversation_id)
        fresh = row is not None and row.owner == owner and row.updated_at >= fresh_after
        return row.messages if row is not None and fresh else None

    async def delete_conversation(self, conversation_id: str, owner: str) -> bool:
        """Delete the owner's conversation; False when there was none."""
        self._record("delete_conversation", conversation_id=conversation_id)
        row = self.conversations.get(conversation_id)
        if row is None or row.owner != owner:
            return False
        del self.conversations[conversation_id]
        return True

    async def expire_conversations(self, *, now: float, fresh_after: float) -> int:
        """Delete expired conversations not leased now."""
        gone = [
            key
            for key, row in self.conversations.items()
            if row.updated_at < fresh_after and (row.lease_until is None or row.lease_until < now)
        ]
        for key in gone:
            del self.conversations[key]
        return len(gone)

    async def count_conversations(self, *, fresh_after: float) -> int:
        """Fresh conversations of every owner."""
        return sum(1 for row in self.conversations.values() if row.updated_at >= fresh_after)

    def collection(self, name: str) -> dict[str, Json]:
        """The records of one collection by key: what a test asserts after a run."""
        return {key: value for (c, key), value in sorted(self.records.items()) if c == name}

    @property
    def audit_records(self) -> list[Mapping[str, Any]]:
        """The stored audit records (the runtime stores them in batches: `Harness.audit()` flushes first)."""
        return [row.record for row in self.audit_rows]

    async def list(self, collection: str, *, prefix: str = "", limit: int = 100) -> list[tuple[str, Json]]:
        """Records whose key starts with `prefix`, in key order, at most `limit`."""
        self._record("list", collection=collection, prefix=prefix, limit=limit)
        keys = sorted(k for c, k in self.records if c == collection and k.startswith(prefix))
        return [(k, copy.deepcopy(self.records[(collection, k)])) for k in keys[:limit]]


class RecordingCache(MemoryCache, _Recorder):
    """The in-process cache the runtime uses without Redis, recording every call.

    A user's tools write under the `app:` prefix (their keys never meet the runtime's); `app_calls` shows their
    calls with the prefix taken off, as the tools made them.
    """

    def __init__(self, **kwargs: Any) -> None:
        MemoryCache.__init__(self, **kwargs)
        _Recorder.__init__(self)

    async def get(self, key: str) -> str | None:
        """The value, or None when absent or expired."""
        self._record("get", key=key)
        return await super().get(key)

    async def set(self, key: str, value: str, *, ttl_seconds: float | None = None) -> None:
        """Store the value."""
        self._record("set", key=key, value=value, ttl_seconds=ttl_seconds)
        await super().set(key, value, ttl_seconds=ttl_seconds)

    async def invalidate(self, pattern: str) -> int:
        """Delete the keys matching the glob pattern."""
        self._record("invalidate", pattern=pattern)
        return await super().invalidate(pattern)

    def app_calls(self) -> list[Call]:
        """The calls the user's tools made, keys and patterns as the tools wrote them (without `app:`)."""
        found = []
        for call in self.calls:
            name = "key" if "key" in call.args else "pattern"
            text = call.args.get(name)
            if isinstance(text, str) and text.startswith(APP_CACHE_PREFIX):
                found.append(Call(call.method, {**call.args, name: text.removeprefix(APP_CACHE_PREFIX)}))
        return found


#: What a scripted route answers with: a fixed reply, or a function of the request that returns one.
Responder: TypeAlias = "Reply | Callable[[httpx.Request], Reply]"


@dataclass(frozen=True)
class Reply:
    """One scripted answer of the external API."""

    status: int = 200
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def response(self, request: httpx.Request) -> httpx.Response:
        """The httpx response to `request`."""
        return httpx.Response(self.status, json=self.json, headers=dict(self.headers), request=request)


class ScriptedExternalApi(ExternalApi, _Recorder):
    """The production external API client (retries, circuit breaker) in front of scripted answers, no network.

    `reply("GET", "/tickets/T-1", json={...})` scripts one route; a request to a route that has no script gets
    a 404 whose body says so, and shows in `calls` like every other. Calls are recorded as the API receives
    them (`method`, `path`, `json`), so a retried call shows once per attempt.
    """

    def __init__(
        self,
        *,
        base_url: str = "http://external-api.test",
        max_retries: int = 0,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        api_key: str | None = None,
    ) -> None:
        breaker = CircuitBreaker(name=self.name, failure_threshold=failure_threshold, reset_timeout=reset_timeout)
        ExternalApi.__init__(
            self,
            base_url=base_url,
            timeout=5.0,
            max_retries=max_retries,
            breaker=breaker,
            api_key=api_key,
            backoff_base=0.0,
            backoff_cap=0.0,
            transport=httpx.MockTransport(self._answer),
        )
        _Recorder.__init__(self)
        self._routes: dict[tuple[str, str], list[Responder]] = {}

    def reply(self, method: str, path: str, reply: Responder | None = None, **fields: Any) -> ScriptedExternalApi:
        """Script the answer to `method path`: a `Reply`, a function of the request, or Reply's fields.

        Scripting a route again queues the answer: each is given once, in order, and the last one stays.
        """
        responder: Responder = reply if reply is not None else Reply(**fields)
        self._routes.setdefault((method.upper(), path), []).append(responder)
        return self

    def _answer(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self._record("request", method=request.method, path=request.url.path, json=body)
        queue = self._routes.get((request.method, request.url.path))
        if not queue:
            message = f"no scripted reply for {request.method} {request.url.path}"
            return httpx.Response(404, json={"error": message}, request=request)
        responder = queue.pop(0) if len(queue) > 1 else queue[0]
        answer = responder(request) if callable(responder) else responder
        return answer.response(request)
