"""A fake of the API the reconciler talks to (`reconcile.ReconcilerApi`), in memory, for fast unit tests.

A fake, not a stub: it stores objects and answers reads from what was stored, with server-side apply's
semantics only as far as the reconciler relies on them (the applied fields replace ours, other labels and the
status stay, resourceVersion and generation move). Every write is recorded in order, so a test asserts on apply
order, pruning, status writes and Events. What only a real API server shows (admission, garbage collection,
field ownership, RBAC) stays with the cluster tests.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent_operator.events import EventRef
from agent_operator.kinds import Applied, ApplyError, ChildKey, key_of
from agent_operator.render import Owner, may_write, with_owner
from agent_operator.render.labels import AGENT, MANAGED_BY, MANAGED_BY_VALUE
from agentry_api import v1alpha1 as api

Key = tuple[str, str, str, str]
"""(apiVersion, kind, namespace, name) of a stored object."""


@dataclass(frozen=True)
class PostedEvent:
    """One Event the reconciler posted."""

    ref: EventRef
    type: str
    reason: str
    message: str


@dataclass
class FakeApi:
    """Objects by key, plus what was written, in order; `broken` makes the named calls fail like a timeout."""

    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    writes: list[tuple[str, str, str]] = field(default_factory=list)
    """(verb, kind, name) of each apply and delete, in the order the reconciler made them."""
    statuses: list[dict[str, Any]] = field(default_factory=list)
    events: list[PostedEvent] = field(default_factory=list)
    agent_reads: int = 0
    refuse: dict[tuple[str, str], str] = field(default_factory=dict)
    """(kind, name) -> the message with which the "API server" refuses an apply of that child."""
    broken: set[str] = field(default_factory=set)
    latency: dict[str, float] = field(default_factory=dict)
    """kind -> seconds an apply of that kind takes (writes are recorded when they finish, as the server's are)."""
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _uids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # --- test set-up -------------------------------------------------------------------------

    def put(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Store an object as someone else would create or replace it (a uid and resourceVersion are added)."""
        body = copy.deepcopy(dict(obj))
        meta = body.setdefault("metadata", {})
        old = self.objects.get(_key(body))
        meta.setdefault("uid", old["metadata"]["uid"] if old else f"uid-{next(self._uids)}")
        meta["resourceVersion"] = str(next(self._versions))
        self.objects[_key(body)] = body
        return body

    def put_agent(self, agent: api.AgentDeployment) -> dict[str, Any]:
        """Store (or update, moving its generation) an AgentDeployment; its status stays."""
        meta = agent.metadata
        old = self.objects.get((api.API_VERSION, api.KIND, meta.namespace, meta.name))
        generation = int(old["metadata"]["generation"]) + 1 if old else 1
        body: dict[str, Any] = {
            "apiVersion": api.API_VERSION,
            "kind": api.KIND,
            "metadata": {"name": meta.name, "namespace": meta.namespace, "generation": generation},
            "spec": agent.spec.wire(),
        }
        if old is not None:
            body["status"] = copy.deepcopy(old.get("status") or {})
        return self.put(body)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored object, or None."""
        return self.objects.get((api_version, kind, namespace, name))

    def roll_out(self, namespace: str, name: str) -> None:
        """What the Deployment controller does: observe the Deployment's generation and make every pod ready."""
        deployment = self.objects[("apps/v1", "Deployment", namespace, name)]
        replicas = int(deployment["spec"].get("replicas", 1))
        deployment["status"] = {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        }
        deployment["metadata"]["resourceVersion"] = str(next(self._versions))

    def _call(self, name: str) -> None:
        if name in self.broken:
            raise ConnectionError(f"fake API server: {name} timed out")

    # --- ReconcilerApi -----------------------------------------------------------------------

    async def agent(self, *, namespace: str, name: str) -> dict[str, Any] | None:
        self._call("agent")
        self.agent_reads += 1
        return copy.deepcopy(self.get(api.API_VERSION, api.KIND, namespace, name))

    async def deployment(self, *, namespace: str, name: str) -> dict[str, Any] | None:
        self._call("deployment")
        return copy.deepcopy(self.get("apps/v1", "Deployment", namespace, name))

    async def secret_keys(self, *, namespace: str, names: Iterable[str]) -> dict[str, set[str] | None]:
        self._call("secret_keys")
        return {name: self.secrets.get((namespace, name)) for name in sorted(set(names))}

    async def stored_child(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        self._call("stored_child")
        meta = obj["metadata"]
        return copy.deepcopy(self.get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"]))

    async def apply_child(self, obj: dict[str, Any], *, owner: Owner) -> Applied:
        self._call("apply_child")
        meta = obj["metadata"]
        refused = self.refuse.get((obj["kind"], meta["name"]))
        if refused is not None:
            raise ApplyError(f"{obj['kind']} {meta['namespace']}/{meta['name']}: {refused}")
        await asyncio.sleep(self.latency.get(obj["kind"], 0.0))
        self.writes.append(("apply", obj["kind"], meta["name"]))
        body = with_owner(obj, owner=owner)
        old = self.get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        generation = 1
        if old is not None:
            kept = old["metadata"]
            body["metadata"]["labels"] = {**(kept.get("labels") or {}), **(meta.get("labels") or {})}
            body["metadata"]["uid"] = kept["uid"]
            moved = {k: v for k, v in old.items() if k not in ("metadata", "status")} != {
                k: v for k, v in body.items() if k != "metadata"
            }
            generation = int(kept.get("generation") or 1) + int(moved)
            if "status" in old:
                body["status"] = old["status"]
        body["metadata"]["generation"] = generation
        stored = self.put(body)
        return Applied(
            key=key_of(stored),
            resource_version=stored["metadata"]["resourceVersion"],
            generation=generation,
            body=copy.deepcopy(stored),
        )

    async def delete_stale(
        self, *, kinds: Iterable[tuple[str, str]], namespace: str, owner: Owner, keep: set[ChildKey]
    ) -> list[ChildKey]:
        self._call("delete_stale")
        wanted = set(kinds)
        deleted = []
        for key, body in list(self.objects.items()):
            labels = body["metadata"].get("labels") or {}
            ours = labels.get(AGENT) == owner.name and labels.get(MANAGED_BY) == MANAGED_BY_VALUE
            if key[:2] not in wanted or key[2] != namespace or not ours:
                continue
            if key_of(body) in keep or not may_write(body, owner=owner):
                continue
            del self.objects[key]
            self.writes.append(("delete", key[1], key[3]))
            deleted.append(key_of(body))
        return deleted

    async def patch_status(self, *, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self._call("patch_status")
        self.statuses.append(copy.deepcopy(dict(status)))
        stored = self.get(api.API_VERSION, api.KIND, namespace, name)
        if stored is not None:
            stored["status"] = {**(stored.get("status") or {}), **copy.deepcopy(dict(status))}

    async def post_event(self, ref: EventRef, *, type: str, reason: str, message: str) -> None:
        self.events.append(PostedEvent(ref=ref, type=type, reason=reason, message=message))


def _key(body: Mapping[str, Any]) -> Key:
    meta = body["metadata"]
    return (body["apiVersion"], body["kind"], meta["namespace"], meta["name"])
