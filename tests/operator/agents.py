"""AgentDeployments the operator tests share, built through the real model (so defaults apply)."""

from __future__ import annotations

from typing import Any

from agentry_api.v1alpha1 import AgentDeployment


def agent(name: str = "triage", namespace: str = "team-a", **spec: Any) -> AgentDeployment:
    """An agent on the offline model with JWT auth from a Secret, plus whatever `spec` overrides."""
    body: dict[str, Any] = {
        "agent": {"model": "test", "instructions": "You triage tickets."},
        "security": {"auth": {"secretRef": {"name": "jwt", "key": "key"}}},
        **spec,
    }
    return AgentDeployment.model_validate({"metadata": {"name": name, "namespace": namespace}, "spec": body})


def manifest(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    """The same agent as a manifest for `kubectl apply`."""
    return {
        "apiVersion": "agentry.dev/v1alpha1",
        "kind": "AgentDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": agent(name, namespace, **spec).spec.wire(),
    }
