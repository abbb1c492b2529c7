"""The real operator never takes an object it did not create, and adopts back only its own orphans.

Each case puts a user's object where one of the agent's children would go, applies the agent, and checks that
the object is unchanged (after the apply and after the agent is deleted), that the agent reports
`ResourceConflict`, and that it proceeds on its own once the object is gone.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent_operator.kinds import CHILD_KINDS
from tests.kube import KubeCluster

from .running import Agents

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

CHILDREN = ",".join(child.plural for child in CHILD_KINDS)
SELECTOR = {"app": "db"}
POD_TEMPLATE = {
    "metadata": {"labels": SELECTOR},
    "spec": {"containers": [{"name": "db", "image": "registry.local/postgres:16"}]},
}
#: kind -> (name the agent's child takes, the user's object there, the agent spec that renders the child).
FOREIGN: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "ServiceAccount": ("victim", {"apiVersion": "v1", "automountServiceAccountToken": False}, {}),
    "ConfigMap": ("victim-config", {"apiVersion": "v1", "data": {"password-policy": "their data"}}, {}),
    "Service": (
        "victim",
        {"apiVersion": "v1", "spec": {"selector": SELECTOR, "ports": [{"port": 5432, "targetPort": 5432}]}},
        {},
    ),
    "Deployment": (
        "victim",
        {
            "apiVersion": "apps/v1",
            "spec": {"replicas": 0, "selector": {"matchLabels": SELECTOR}, "template": POD_TEMPLATE},
        },
        {},
    ),
    "PodDisruptionBudget": (
        "victim",
        {"apiVersion": "policy/v1", "spec": {"minAvailable": 1, "selector": {"matchLabels": SELECTOR}}},
        {"replicas": 2},
    ),
    "HorizontalPodAutoscaler": (
        "victim",
        {
            "apiVersion": "autoscaling/v2",
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "db"},
                "minReplicas": 1,
                "maxReplicas": 3,
            },
        },
        {
            "autoscaling": {
                "enabled": True,
                "provider": "HPA",
                "minReplicas": 1,
                "maxReplicas": 3,
                "targetCPUUtilizationPercent": 60,
            }
        },
    ),
    "NetworkPolicy": (
        "victim",
        {"apiVersion": "networking.k8s.io/v1", "spec": {"podSelector": {"matchLabels": SELECTOR}}},
        {},
    ),
}


def _create(agents: Agents, kind: str, name: str, body: dict[str, Any], **meta: Any) -> None:
    obj = {**body, "kind": kind, "metadata": {"name": name, "namespace": agents.namespace, **meta}}
    agents.kubectl("create", "-f", "-", stdin=json.dumps(obj))


def _users_part(cluster: KubeCluster, namespace: str, kind: str, name: str) -> dict[str, Any]:
    """Everything of the object but what controllers write to its status (and the version that moves with it)."""
    answer = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json", "--show-managed-fields")
    obj: dict[str, Any] = json.loads(answer.stdout)
    obj.pop("status", None)
    meta = obj["metadata"]
    meta.pop("resourceVersion", None)
    meta["managedFields"] = [m for m in meta.get("managedFields", []) if m.get("subresource") != "status"]
    return obj


def _conflict(agents: Agents, name: str) -> dict[str, Any]:
    return agents.until(
        lambda: (c := agents.condition(name)) and c["reason"] == "ResourceConflict" and c,
        what=f"{name}: Ready=False with reason ResourceConflict",
    )


def _delete_agent(agents: Agents, name: str) -> None:
    """Foreground deletion: returns only after the garbage collector has deleted every dependent."""
    agents.kubectl("delete", "agentdeployment", name, "--cascade=foreground", "--wait", "--timeout=60s")


@pytest.mark.parametrize("kind", list(FOREIGN))
def test_a_users_object_under_a_childs_name_is_left_alone(agents: Agents, kind: str) -> None:
    name, body, spec = FOREIGN[kind]
    if kind == "NetworkPolicy":
        agents.operator.stop()
        agents.operator.extra_env["AGENTRY_NETWORK_POLICY"] = "true"
        agents.operator.start()
    agents.secret("jwt", key="k" * 32)
    _create(agents, kind, name, body)
    before = _users_part(agents.cluster, agents.namespace, kind, name)

    agents.apply("victim", **spec)

    condition = _conflict(agents, "victim")
    assert condition["status"] == "False"
    assert f"{kind} {agents.namespace}/{name} already exists and is not managed by Agentry" in condition["message"]
    assert (agents.condition("victim", "Degraded") or {}).get("status") == "True"
    assert (agents.condition("victim", "Stalled") or {}).get("reason") == "ResourceConflict"  # kstatus: Failed
    agents.until(
        lambda: [e for e in agents.events("victim") if e["reason"] == "ResourceConflict"], what="a conflict Event"
    )
    assert agents.items("serviceaccounts,configmaps,services,deployments") == []  # nothing applied at all
    after_apply = _users_part(agents.cluster, agents.namespace, kind, name)
    assert after_apply == before
    assert all(m["manager"] != "agentry-operator" for m in after_apply["metadata"]["managedFields"])

    _delete_agent(agents, "victim")

    assert _users_part(agents.cluster, agents.namespace, kind, name) == before

    agents.apply("victim", **spec)
    _conflict(agents, "victim")
    agents.kubectl("delete", kind, name, "--wait")

    body_ready = agents.ready("victim")
    uid = body_ready["metadata"]["uid"]
    child = agents.get(kind, name) or {}
    assert [r["uid"] for r in child["metadata"].get("ownerReferences", []) if r.get("controller")] == [uid]
    assert agents.condition("victim", "Degraded")["status"] == "False"  # type: ignore[index]
    assert agents.condition("victim", "Stalled") is None


def test_an_object_another_agent_controls_is_a_conflict_too(agents: Agents) -> None:
    agents.secret("jwt", key="k" * 32)
    agents.apply("other")
    other = agents.ready("other")
    reference = {
        "apiVersion": "agentry.dev/v1alpha1",
        "kind": "AgentDeployment",
        "name": "other",
        "uid": other["metadata"]["uid"],
        "controller": True,
    }
    _create(agents, "ConfigMap", "victim-config", {"apiVersion": "v1", "data": {"k": "v"}}, ownerReferences=[reference])
    before = _users_part(agents.cluster, agents.namespace, "configmap", "victim-config")

    agents.apply("victim")

    condition = _conflict(agents, "victim")
    assert "ConfigMap" in condition["message"] and "controlled by AgentDeployment other" in condition["message"]
    assert _users_part(agents.cluster, agents.namespace, "configmap", "victim-config") == before
    _delete_agent(agents, "victim")
    assert _users_part(agents.cluster, agents.namespace, "configmap", "victim-config") == before
    assert agents.condition("other")["status"] == "True"  # type: ignore[index]


def test_children_orphaned_on_purpose_are_adopted_back(agents: Agents) -> None:
    agents.secret("jwt", key="k" * 32)
    agents.apply("keep", replicas=2)
    first = agents.ready("keep")
    children = {(c["kind"], c["metadata"]["name"]): c["metadata"]["uid"] for c in agents.items(CHILDREN)}
    assert len(children) == 5

    agents.kubectl("delete", "agentdeployment", "keep", "--cascade=orphan", "--wait", "--timeout=60s")
    orphans = {(c["kind"], c["metadata"]["name"]): c["metadata"]["uid"] for c in agents.items(CHILDREN)}
    assert orphans == children  # still there, same objects

    agents.apply("keep", replicas=2)

    second = agents.ready("keep")
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    assert agents.condition("keep", "Degraded")["reason"] != "ResourceConflict"  # type: ignore[index]

    def adopted() -> list[dict[str, Any]] | None:
        items = agents.items(CHILDREN)
        return items if items and all(_controller_uids(c) == [second["metadata"]["uid"]] for c in items) else None

    adopted_children = agents.until(adopted, what="every orphan to carry the new agent as its controller")
    assert {(c["kind"], c["metadata"]["name"]): c["metadata"]["uid"] for c in adopted_children} == children


def _controller_uids(obj: dict[str, Any]) -> list[str]:
    return [ref["uid"] for ref in obj["metadata"].get("ownerReferences", []) if ref.get("controller")]
