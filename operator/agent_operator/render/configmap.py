"""The runtime ConfigMap: the whole AgentDeployment manifest (never a Secret value) as the runtime reads it."""

from __future__ import annotations

import hashlib
from typing import Any

import yaml

from agent_operator.config import OperatorConfig
from agentry_api.v1alpha1 import AgentDeployment
from agentry_api.wiring import CONFIG_KEY

from .labels import configmap_name, metadata


def runtime_config(agent: AgentDeployment) -> str:
    """The manifest the runtime loads: apiVersion, kind, name, namespace and spec; status left out.

    spec.replicas is left out too: it means nothing inside a pod, and keeping it would change the config hash,
    so every `kubectl scale` (and every autoscaling step) would roll all the pods.
    Secret references stay references: the values reach the pod as projected files, never through here.
    Keys are sorted so that the same spec always gives the same text, and so the same hash.
    """
    spec = agent.spec.model_copy(update={"replicas": None})
    manifest = agent.model_copy(update={"status": None, "spec": spec}).wire()
    return yaml.safe_dump(manifest, sort_keys=True, allow_unicode=True)


def config_hash(agent: AgentDeployment) -> str:
    """Short digest of the runtime config; it goes on the pod template, so any change rolls the pods."""
    return hashlib.sha256(runtime_config(agent).encode()).hexdigest()[:16]


def render_configmap(agent: AgentDeployment, config: OperatorConfig) -> dict[str, Any]:
    """The ConfigMap mounted at the runtime's config path."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(agent, name=configmap_name(agent)),
        "data": {CONFIG_KEY: runtime_config(agent)},
    }
