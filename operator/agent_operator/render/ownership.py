"""Owner references and who holds an object: every child points at its AgentDeployment, and nothing else is taken."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentry_api.v1alpha1 import API_VERSION, GROUP, KIND

from .labels import AGENT, MANAGED_BY, MANAGED_BY_VALUE


@dataclass(frozen=True, kw_only=True)
class Owner:
    """The AgentDeployment a child belongs to; the uid comes from the stored object, not from the spec."""

    name: str
    uid: str

    def reference(self) -> dict[str, Any]:
        """A controller reference; blockOwnerDeletion makes foreground deletion wait for the children."""
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True, kw_only=True)
class Conflict:
    """A child's name is taken by an object this agent may not write: someone else's, or another controller's."""

    kind: str
    namespace: str
    name: str
    holder: str
    """Who holds it, for the message: "controlled by Deployment web" or "not managed by Agentry"."""

    def message(self) -> str:
        """One sentence naming the object, its holder and what the user can do."""
        return (
            f"{self.kind} {self.namespace}/{self.name} already exists and is {self.holder}; "
            "Agentry leaves it untouched: rename the agent or remove that object"
        )


def with_owner(obj: dict[str, Any], *, owner: Owner) -> dict[str, Any]:
    """A copy of `obj` whose metadata carries the owner reference (the input is left as it was)."""
    owned = copy.deepcopy(obj)
    owned["metadata"]["ownerReferences"] = [owner.reference()]
    return owned


def is_owned_by(obj: Mapping[str, Any], *, uid: str) -> bool:
    """Whether `obj` names the AgentDeployment with this uid as its controller."""
    return any(ref.get("uid") == uid for ref in _controllers(obj))


def may_write(obj: Mapping[str, Any], *, owner: Owner) -> bool:
    """Whether this agent may apply over (or prune) the stored `obj`.

    Yes when the agent controls it, and for an orphan of an earlier agent of the same name: an object with
    Agentry's labels for this agent whose controller is either gone from its references (`kubectl delete
    --cascade=orphan` has the garbage collector remove them) or an AgentDeployment of this name with another
    uid (names are unique, so that one was deleted). Adopting those is what a Deployment does with orphaned
    ReplicaSets. Everything else (no labels, another controller, another agent's labels) is left alone.
    """
    if is_owned_by(obj, uid=owner.uid):
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if labels.get(MANAGED_BY) != MANAGED_BY_VALUE or labels.get(AGENT) != owner.name:
        return False
    return all(_is_earlier_self(ref, owner=owner) for ref in _controllers(obj))


def conflict_of(kind: str, existing: Mapping[str, Any] | None, *, owner: Owner) -> Conflict | None:
    """The conflict a stored child makes for this agent, or None when it is absent or the agent may write it."""
    if existing is None or may_write(existing, owner=owner):
        return None
    meta = existing.get("metadata") or {}
    controller = next(iter(_controllers(existing)), None)
    holder = "not managed by Agentry"
    if controller is not None:
        holder = f"controlled by {controller.get('kind', 'an object')} {controller.get('name', '')}".rstrip()
    return Conflict(kind=kind, namespace=str(meta.get("namespace", "")), name=str(meta.get("name", "")), holder=holder)


def _controllers(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    references = (obj.get("metadata") or {}).get("ownerReferences") or []
    return [ref for ref in references if ref.get("controller")]


def _is_earlier_self(ref: Mapping[str, Any], *, owner: Owner) -> bool:
    group = str(ref.get("apiVersion", "")).partition("/")[0]
    return group == GROUP and ref.get("kind") == KIND and ref.get("name") == owner.name and ref.get("uid") != owner.uid
