"""Owner references: every child points at its AgentDeployment, so garbage collection deletes it with the agent."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from agent_operator.api.v1alpha1 import API_VERSION, KIND


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


def with_owner(obj: dict[str, Any], *, owner: Owner) -> dict[str, Any]:
    """A copy of `obj` whose metadata carries the owner reference (the input is left as it was)."""
    owned = copy.deepcopy(obj)
    owned["metadata"]["ownerReferences"] = [owner.reference()]
    return owned


def is_owned_by(obj: dict[str, Any], *, uid: str) -> bool:
    """Whether `obj` names the AgentDeployment with this uid as its controller."""
    references = obj.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid and ref.get("controller") for ref in references)
