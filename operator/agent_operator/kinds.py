"""The one table of the kinds an agent's children may have: watches, apply, pruning and RBAC derive from it.

Pure data (no client import), so `render/` and the tests read it as freely as the apply layer. Adding a child
kind is one row here plus a render function called from `render.render_children`; the apply layer finds the
lightkube class by apiVersion and kind, the kopf glue watches the plural, the chart's RBAC test checks the rule.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Any


@dataclass(frozen=True)
class ChildKind:
    """One kind of child object, and what the operator may do with it (a row names the flags that hold)."""

    api_version: str
    kind: str
    plural: str
    _: KW_ONLY
    recreatable: bool = False
    """Holds no running workload: may be deleted and created afresh when a hand edit makes apply impossible."""
    optional: bool = False
    """Rendered only under some specs; an object the agent no longer renders is pruned."""
    status_generation: bool = False
    """Has a status subresource: resourceVersion moves with status, so drift is told by generation."""
    applied_first: bool = False
    """What the pods mount or are reached by: applied before the rest, so a new pod finds it."""

    @property
    def group(self) -> str:
        """API group ('' for the core group), as RBAC rules and kopf name it."""
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        """API version within the group."""
        return self.api_version.rpartition("/")[2]

    @property
    def key(self) -> tuple[str, str]:
        """(apiVersion, kind), as a rendered or stored object names its kind."""
        return (self.api_version, self.kind)


CHILD_KINDS: tuple[ChildKind, ...] = (
    ChildKind("v1", "ServiceAccount", "serviceaccounts", recreatable=True, applied_first=True),
    ChildKind("v1", "ConfigMap", "configmaps", recreatable=True, applied_first=True),
    ChildKind("v1", "Service", "services", recreatable=True, applied_first=True),
    ChildKind("apps/v1", "Deployment", "deployments", status_generation=True),  # recreating it would stop the pods
    ChildKind(
        "policy/v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        recreatable=True,
        optional=True,
        status_generation=True,
    ),
    ChildKind(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        recreatable=True,
        optional=True,
        status_generation=True,
    ),
    ChildKind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", recreatable=True, optional=True),
)

BY_KIND: dict[str, ChildKind] = {child.kind: child for child in CHILD_KINDS}
"""Each row by its kind name (kind names of children are unique across groups)."""


# --- what one apply of a child returns (pure data: the reconciler needs it without the client) -------

ChildKey = tuple[str, str, str]
"""(apiVersion, kind, name) of a child."""


class ApplyError(RuntimeError):
    """The API server refused a child; the message names the object and carries the server's reason."""


@dataclass(frozen=True, kw_only=True)
class Applied:
    """What the API server stored for one child: enough to tell our own echo from someone else's edit."""

    key: ChildKey
    resource_version: str
    generation: int
    body: dict[str, Any]


def key_of(obj: dict[str, Any]) -> ChildKey:
    """(apiVersion, kind, name) of a rendered or stored child."""
    return (obj["apiVersion"], obj["kind"], obj["metadata"]["name"])
