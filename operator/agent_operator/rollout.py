"""The one reader of a Deployment's progress: what the status conditions and the health policies both look at."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"


@dataclass(frozen=True)
class DeploymentView:
    """The agent's Deployment as last observed: counts from its spec, metadata and status."""

    desired: int
    replicas: int
    updated: int
    ready: int
    generation: int = 1
    observed_generation: int = 1
    available: int = 0
    deadline_exceeded: str | None = None
    """The Progressing condition's message when the controller gave up on the rollout, else None."""

    @property
    def settling(self) -> str:
        """Why the Deployment is in motion (a rollout or a scale), or '' when it is steady."""
        if self.observed_generation < self.generation:
            return "the Deployment controller has not seen the latest spec yet"
        if self.updated < self.desired or self.replicas > self.updated:
            return "a rollout is in progress"
        if self.replicas != self.desired or self.ready < self.desired:
            return "the Deployment is scaling or its pods are not all ready"
        return ""


def deployment_view(body: Mapping[str, Any]) -> DeploymentView:
    """Read a stored Deployment (absent fields count as the API server's defaults: 1 desired, 0 of the rest)."""
    spec, status, meta = body.get("spec") or {}, body.get("status") or {}, body.get("metadata") or {}
    stuck = next(
        (
            str(c.get("message", "the rollout exceeded its progress deadline"))
            for c in status.get("conditions") or []
            if c.get("type") == "Progressing" and c.get("reason") == DEADLINE_EXCEEDED
        ),
        None,
    )
    return DeploymentView(
        desired=int(spec.get("replicas", 1)),
        replicas=int(status.get("replicas", 0)),
        updated=int(status.get("updatedReplicas", 0)),
        ready=int(status.get("readyReplicas", 0)),
        generation=int(meta.get("generation") or 0),
        observed_generation=int(status.get("observedGeneration") or 0),
        available=int(status.get("availableReplicas", 0)),
        deadline_exceeded=stuck,
    )
