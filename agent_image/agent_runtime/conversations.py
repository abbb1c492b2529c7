"""Multi-turn conversations: a conversation id's history, leased by one turn at a time across every replica.

A turn (envelope.py) begins by taking the conversation's lease in the database (409 `conversation_busy` when
another turn, on any replica, holds it), runs with the stored history as pydantic-ai's `message_history`, and
stores the history with the turn's new messages, which releases the lease; a failed turn releases it without
storing. Expired conversations nobody continues are deleted by a sweep on a timer, never on the request path.
The lease lasts the request timeout (plus a margin), so a replica that crashed mid-turn holds it no longer.

Ownership: the row names its owner as an HMAC-SHA256 of the caller's subject (keyed with the PII HMAC key when
spec.security.privacy has one, a fixed domain key otherwise), never the subject itself. Another principal's id,
an unknown id and an expired one all get the same 404, so ids leak nothing.

PII: with redaction on, the history is stored REDACTED (the same anonymiser as results), so what is at rest
holds no PII and later turns show the model the redacted history; only the current prompt reaches it as sent.
One exception: the arguments of tool calls waiting for a person's approval (approvals.py) are kept as the model
sent them until they are decided, since an approved call must run with them; the deciding turn redacts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter

from agentry_api.v1alpha1 import ConversationsSpec

from .errors import ApiError
from .security.pii import Anonymizer
from .services.protocols import ConversationStore

log = logging.getLogger(__name__)

#: Key of the owner hash when no PII HMAC key is configured: separates this hash from any other of a subject.
DEFAULT_OWNER_KEY = b"agentry-conversation-owner"
#: Seconds a lease outlives the request timeout, so a turn finishing on time still holds it when it stores.
LEASE_MARGIN = 5.0
#: Fields of a message part that carry what the user, the model or a tool said (the ones redacted).
_SAID = ("content", "args")
#: Parts that continue a turn: a history must never start with one (its call would be missing).
_CONTINUING = {"tool-return", "retry-prompt"}


def _not_found(conversation_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no conversation with id {conversation_id!r}")


def _unavailable(exc: Exception) -> ApiError:
    log.error("conversation storage failed", exc_info=exc)
    return ApiError(503, "database_unavailable", "conversations cannot be used now; retry later", retry_after=5)


@dataclass
class Turn:
    """One turn of a conversation: its id, its owner's hash, the history it runs with, whether it holds a lease."""

    conversation_id: str
    owner: str
    history: list[ModelMessage]
    stored_history: list[dict[str, Any]]
    leased: bool
    finished: bool = False


class Conversations:
    """The conversation steps of the envelope, on the agent's database, with a clock tests can set."""

    def __init__(
        self,
        *,
        spec: ConversationsSpec,
        store: ConversationStore,
        anonymizer: Anonymizer,
        owner_key: bytes | None,
        lease_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        self._store = store
        self._anonymizer = anonymizer
        self._owner_key = owner_key or DEFAULT_OWNER_KEY
        self._lease_seconds = lease_seconds + LEASE_MARGIN
        self.clock = clock
        self._sweeper: asyncio.Task[None] | None = None

    def owner_of(self, subject: str) -> str:
        """What the row stores as the owner: a keyed hash of the subject, never the subject."""
        return hmac.new(self._owner_key, subject.encode(), hashlib.sha256).hexdigest()

    def _fresh_after(self, now: float) -> float:
        return now - self.spec.ttl_seconds

    async def begin(self, subject: str, conversation_id: str | None) -> Turn:
        """A new conversation (no id), or the lease and history of the caller's one; 404, 409 or 503 otherwise."""
        owner, now = self.owner_of(subject), self.clock()
        try:
            if conversation_id is None:
                return Turn(uuid.uuid4().hex, owner, history=[], stored_history=[], leased=False)
            lease = await self._store.lease_conversation(
                conversation_id,
                owner,
                now=now,
                lease_until=now + self._lease_seconds,
                fresh_after=self._fresh_after(now),
            )
        except Exception as exc:
            raise _unavailable(exc) from None
        if lease.state == "missing":
            raise _not_found(conversation_id)
        if lease.state == "busy":
            raise ApiError(409, "conversation_busy", "another turn of this conversation is running; retry after it")
        stored = json.loads(lease.messages)
        return Turn(conversation_id, owner, ModelMessagesTypeAdapter.validate_python(stored), stored, leased=True)

    async def sweep(self) -> int:
        """Delete the expired conversations nobody continues (a used one is deleted when met); how many went."""
        now = self.clock()
        try:
            return await self._store.expire_conversations(now=now, fresh_after=self._fresh_after(now))
        except Exception as exc:
            log.warning("sweeping expired conversations failed; the next sweep retries", exc_info=exc)
            return 0

    def start_sweeping(self, *, interval: float) -> None:
        """Sweep every `interval` seconds on the running loop, off the request path."""
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_every(interval), name="agentry-sweep")

    async def stop_sweeping(self) -> None:
        """Stop the sweeper; safe to call twice."""
        task, self._sweeper = self._sweeper, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _sweep_every(self, interval: float) -> None:
        while True:
            await self.sweep()
            await asyncio.sleep(interval)

    async def finish(
        self,
        turn: Turn,
        new_messages: Sequence[ModelMessage],
        *,
        pending: Set[str] = frozenset(),
        decided: Set[str] = frozenset(),
    ) -> None:
        """Store the history with the turn's new messages (redacted, trimmed to the bounds); releases the lease.

        The arguments of `pending` tool calls (a paused run's) are kept as the model sent them, since an approved
        call runs with them; the turn that decides them (`decided`) stores them redacted at last.
        """
        new = self._redacted(ModelMessagesTypeAdapter.dump_python(list(new_messages), mode="json"), keep=pending)
        earlier = self._redacted(turn.stored_history, only=decided) if decided else turn.stored_history
        kept = trim([*earlier, *new], max_messages=self.spec.max_messages, max_bytes=self.spec.max_bytes)
        try:
            await self._store.save_conversation(
                turn.conversation_id, turn.owner, json.dumps(kept, ensure_ascii=False), now=self.clock()
            )
        except Exception as exc:
            raise _unavailable(exc) from None
        turn.finished = True

    async def release(self, turn: Turn) -> None:
        """Release the lease of a turn that did not finish; a failure is logged (the lease then expires)."""
        if not turn.leased or turn.finished:
            return
        try:
            await self._store.release_conversation(turn.conversation_id, turn.owner)
        except Exception as exc:
            log.error("releasing a conversation lease failed; it expires on its own", exc_info=exc)

    async def read(self, subject: str, conversation_id: str) -> list[Any]:
        """The stored (redacted) history of the caller's conversation, in pydantic-ai's JSON format; 404 otherwise."""
        try:
            text = await self._store.get_conversation(
                conversation_id, self.owner_of(subject), fresh_after=self._fresh_after(self.clock())
            )
        except Exception as exc:
            raise _unavailable(exc) from None
        if text is None:
            raise _not_found(conversation_id)
        return list(json.loads(text))

    async def delete(self, subject: str, conversation_id: str) -> None:
        """Delete the caller's conversation; 404 when it has none with that id."""
        try:
            deleted = await self._store.delete_conversation(conversation_id, self.owner_of(subject))
        except Exception as exc:
            raise _unavailable(exc) from None
        if not deleted:
            raise _not_found(conversation_id)

    def _redacted(
        self, messages: list[Any], *, keep: Set[str] = frozenset(), only: Set[str] | None = None
    ) -> list[dict[str, Any]]:
        """The messages with what was said anonymised; kinds, names, ids and times are kept (they are the shape).

        Tool calls whose id is in `keep` are left as they are; with `only`, nothing but those calls is redacted.
        """
        redacted = []
        for message in messages:
            parts = []
            for part in message.get("parts", []):
                call_id = part.get("tool_call_id") if part.get("part_kind") == "tool-call" else None
                if call_id in keep or (only is not None and call_id not in only):
                    parts.append(part)
                else:
                    parts.append(
                        {key: self._anonymizer.redact_json(v)[0] if key in _SAID else v for key, v in part.items()}
                    )
            redacted.append({**message, "parts": parts})
        return redacted


def trim(messages: list[dict[str, Any]], *, max_messages: int, max_bytes: int) -> list[dict[str, Any]]:
    """The newest messages within both bounds, cut only where a turn starts (a request with the user's prompt).

    Dropping whole turns keeps the history valid for the model: it starts with a prompt, and no tool result
    is kept without the call it answers. When even the last turn exceeds a bound, nothing is kept.
    """
    sizes = [len(json.dumps(message, ensure_ascii=False).encode()) for message in messages]  # + ", " or "[]" each
    start = 0
    while start < len(messages) and (
        len(messages) - start > max_messages or sum(sizes[start:]) + 2 * (len(sizes) - start) > max_bytes
    ):
        start = _next_turn(messages, start + 1)
    return messages[start:]


def _next_turn(messages: list[dict[str, Any]], index: int) -> int:
    """The index of the first message from `index` on that starts a turn, or the length of the list."""
    for position in range(index, len(messages)):
        message = messages[position]
        kinds = {part.get("part_kind") for part in message.get("parts", [])}
        if message.get("kind") == "request" and "user-prompt" in kinds and not kinds & _CONTINUING:
            return position
    return len(messages)
