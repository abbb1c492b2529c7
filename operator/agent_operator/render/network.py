"""The optional NetworkPolicy: the agent's port is reachable from its own namespace and the operator's only.

Rendered when the operator runs with AGENTRY_NETWORK_POLICY=true (a cluster-wide choice of the platform team,
not a per-agent one: a policy is only as good as the CNI that enforces it). Egress is left open, because the
agent must reach its model provider, database and external API wherever they are.
"""

from __future__ import annotations

from typing import Any

from agent_operator.config import OperatorConfig
from agentry_api.v1alpha1 import AgentDeployment
from agentry_api.wiring import RUNTIME_PORT

from .labels import child_name, metadata, selector_labels

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def wants_network_policy(agent: AgentDeployment, config: OperatorConfig) -> bool:
    """Whether the operator is configured to render NetworkPolicies."""
    return config.network_policy


def render_network_policy(agent: AgentDeployment, config: OperatorConfig) -> dict[str, Any]:
    """Ingress to the runtime port from pods of the agent's namespace and, if known, the operator's namespace."""
    peers: list[dict[str, Any]] = [{"podSelector": {}}]
    if config.operator_namespace and config.operator_namespace != agent.metadata.namespace:
        peers.append({"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: config.operator_namespace}}})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(agent, name=child_name(agent)),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(agent)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": peers, "ports": [{"protocol": "TCP", "port": RUNTIME_PORT}]}],
        },
    }
