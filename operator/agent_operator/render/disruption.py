"""The PodDisruptionBudget: a drain or the operator's own restarts never take more than one pod at a time."""

from __future__ import annotations

from typing import Any

from agent_operator.config import OperatorConfig
from agentry_api.v1alpha1 import AgentDeployment

from .deployment import hpa_owns_replicas
from .labels import child_name, metadata, selector_labels


def wants_pdb(agent: AgentDeployment) -> bool:
    """Only with more than one replica: a budget on a single pod would block every node drain."""
    spec = agent.spec
    least = spec.autoscaling.min_replicas if hpa_owns_replicas(agent) else spec.desired_replicas()
    return least > 1


def render_pdb(agent: AgentDeployment, config: OperatorConfig) -> dict[str, Any]:
    """A policy/v1 PDB allowing one pod of the agent to be unavailable."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(agent, name=child_name(agent)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(agent)}},
    }
