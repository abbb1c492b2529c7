"""The agent's Service (its stable in-cluster URL) and ServiceAccount (its identity, without an API token)."""

from __future__ import annotations

from typing import Any

from agent_operator.config import OperatorConfig
from agentry_api.v1alpha1 import AgentDeployment
from agentry_api.wiring import RUNTIME_PORT

from .labels import child_name, metadata, selector_labels


def service_url(agent: AgentDeployment) -> str:
    """In-cluster URL of the agent, as status.url reports it."""
    return f"http://{child_name(agent)}.{agent.metadata.namespace}.svc:{RUNTIME_PORT}"


def render_service(agent: AgentDeployment, config: OperatorConfig) -> dict[str, Any]:
    """A ClusterIP Service on the runtime port, selecting only ready pods of this agent.

    `appProtocol: http` says what the port speaks to whatever routes to it (Gateway API implementations, meshes):
    HTTP/1.1, on which the streamed responses (Server-Sent Events) are long-lived ordinary responses; the runtime
    speaks no HTTP/2, so a proxy must not upgrade the connection to h2c.
    """
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(agent, name=child_name(agent)),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(agent),
            "ports": [
                {"name": "http", "port": RUNTIME_PORT, "targetPort": "http", "protocol": "TCP", "appProtocol": "http"}
            ],
        },
    }


def render_service_account(agent: AgentDeployment, config: OperatorConfig) -> dict[str, Any]:
    """A ServiceAccount per agent, so cloud workload identity or RBAC can be granted to one agent only.

    Its token is not mounted (the pod template turns automounting off): the runtime never calls the API.
    """
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(agent, name=child_name(agent)),
        "automountServiceAccountToken": False,
    }
