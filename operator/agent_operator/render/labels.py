"""Names and labels of an agent's children: one place, so render, apply and status agree."""

from __future__ import annotations

from agentry_api.v1alpha1 import AgentDeployment

#: Label every child carries; the apply layer finds (and only ever deletes) objects by it.
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "agentry"
#: Label naming the AgentDeployment a child belongs to (the dev pod runner finds pods by it).
AGENT = "agentry.dev/agent"
NAME = "app.kubernetes.io/name"
NAME_VALUE = "agentry-agent"
INSTANCE = "app.kubernetes.io/instance"
#: Pod template annotation holding the hash of the runtime config: a new hash rolls the pods.
CONFIG_HASH = "agentry.dev/config-hash"


def child_name(agent: AgentDeployment) -> str:
    """Name of the Deployment, Service, ServiceAccount, PDB, HPA and NetworkPolicy (the agent's own name)."""
    return agent.metadata.name


def configmap_name(agent: AgentDeployment) -> str:
    """Name of the runtime ConfigMap (the agent name is at most 52 characters, so this fits in 63)."""
    return f"{agent.metadata.name}-config"


def selector_labels(agent: AgentDeployment) -> dict[str, str]:
    """Labels that select the agent's pods; immutable in a Deployment, so they never change."""
    return {NAME: NAME_VALUE, INSTANCE: agent.metadata.name}


def selector_string(agent: AgentDeployment) -> str:
    """The pod selector as `kubectl` writes it, for status.selector and the scale subresource."""
    return ",".join(f"{key}={value}" for key, value in sorted(selector_labels(agent).items()))


def common_labels(agent: AgentDeployment) -> dict[str, str]:
    """Labels on every child and every pod."""
    return {**selector_labels(agent), MANAGED_BY: MANAGED_BY_VALUE, AGENT: agent.metadata.name}


def metadata(agent: AgentDeployment, *, name: str) -> dict[str, object]:
    """Metadata of a child: name, namespace, common labels (owner references come from the apply layer)."""
    return {"name": name, "namespace": agent.metadata.namespace, "labels": common_labels(agent)}
