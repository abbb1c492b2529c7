"""The HorizontalPodAutoscaler, when spec.autoscaling delegates the replica count to Kubernetes."""

from __future__ import annotations

from typing import Any

from agent_operator.config import OperatorConfig
from agentry_api.v1alpha1 import AgentDeployment

from .deployment import hpa_owns_replicas
from .labels import child_name, metadata


def wants_hpa(agent: AgentDeployment) -> bool:
    """autoscaling.enabled with provider HPA; provider Operator scales through the scale subresource instead."""
    return hpa_owns_replicas(agent)


def render_hpa(agent: AgentDeployment, config: OperatorConfig) -> dict[str, Any]:
    """An autoscaling/v2 HPA on CPU, with the spec's bounds and scale-down stabilisation window."""
    scaling = agent.spec.autoscaling
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(agent, name=child_name(agent)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": child_name(agent)},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": scaling.target_cpu_utilization_percent},
                    },
                }
            ],
            "behavior": {
                "scaleDown": {"stabilizationWindowSeconds": scaling.scale_down_stabilization_seconds},
            },
        },
    }
