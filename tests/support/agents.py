"""The one minimal agent every tier starts from: the offline model, JWT auth from a Secret, nothing else."""

from __future__ import annotations

from typing import Any

from agentry_api.v1alpha1 import AgentDeployment


def minimal_spec(*, instructions: str = "You triage tickets.", jwt_secret: str = "jwt") -> dict[str, Any]:
    """The smallest valid spec on the wire: `test` model, JWT auth with the key in Secret `jwt_secret`."""
    return {
        "agent": {"model": "test", "instructions": instructions},
        "security": {"auth": {"secretRef": {"name": jwt_secret, "key": "key"}}},
    }


def agent(name: str = "triage", namespace: str = "team-a", **spec: Any) -> AgentDeployment:
    """The minimal agent through the real model (so defaults apply), top-level spec keys replaced by `spec`."""
    body: dict[str, Any] = {**minimal_spec(), **spec}
    return AgentDeployment.model_validate({"metadata": {"name": name, "namespace": namespace}, "spec": body})


def manifest(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    """The same agent as a manifest for `kubectl apply`."""
    return {
        "apiVersion": "agentry.dev/v1alpha1",
        "kind": "AgentDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": agent(name, namespace, **spec).spec.wire(),
    }
