"""Pure rendering of an agent's children: `render_*(agent, config) -> dict`, no I/O, no Kubernetes client."""

from __future__ import annotations

from typing import Any

from agent_operator.config import OperatorConfig
from agentry_api.v1alpha1 import AgentDeployment

from .autoscaler import render_hpa, wants_hpa
from .configmap import config_hash, render_configmap, runtime_config
from .deployment import hpa_owns_replicas, render_deployment
from .disruption import render_pdb, wants_pdb
from .network import render_network_policy, wants_network_policy
from .ownership import Conflict, Owner, conflict_of, is_owned_by, may_write, with_owner
from .service import render_service, render_service_account, service_url


def render_children(agent: AgentDeployment, config: OperatorConfig) -> list[dict[str, Any]]:
    """Every child the agent should have now, in apply order (what the pods mount comes before the pods).

    Each kind returned here has its row in `agent_operator.kinds.CHILD_KINDS` (a unit test checks it).
    """
    children = [
        render_service_account(agent, config),
        render_configmap(agent, config),
        render_service(agent, config),
        render_deployment(agent, config),
    ]
    if wants_pdb(agent):
        children.append(render_pdb(agent, config))
    if wants_hpa(agent):
        children.append(render_hpa(agent, config))
    if wants_network_policy(agent, config):
        children.append(render_network_policy(agent, config))
    return children


__all__ = [
    "Conflict",
    "Owner",
    "config_hash",
    "conflict_of",
    "hpa_owns_replicas",
    "is_owned_by",
    "may_write",
    "render_children",
    "render_configmap",
    "render_deployment",
    "render_hpa",
    "render_network_policy",
    "render_pdb",
    "render_service",
    "render_service_account",
    "runtime_config",
    "service_url",
    "with_owner",
]
