"""The local control plane behaves like a real cluster: scheduling, garbage collection, RBAC, CRDs."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agentry_dev.cluster.versions import PINNED
from tests.kube import KubeCluster, eventually, install_crd

pytestmark = pytest.mark.cluster

CRD = Path(__file__).resolve().parents[3] / "crds" / "agentry.dev_agentdeployments.yaml"

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.invalid/web:1
"""


def _items(cluster: KubeCluster, kind: str, namespace: str, *selector: str) -> list[dict[str, Any]]:
    answer = cluster.kubectl("get", kind, "-n", namespace, "-o", "json", *selector)
    items: list[dict[str, Any]] = json.loads(answer.stdout)["items"]
    return items


def _is_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _running_ready_pods(cluster: KubeCluster, namespace: str) -> list[dict[str, Any]] | None:
    pods = _items(cluster, "pods", namespace, "-l", "app=web")
    done = len(pods) == 2 and all(p["status"].get("phase") == "Running" and _is_ready(p) for p in pods)
    return pods if done else None


def test_deployment_pods_run_ready_with_loopback_ips(kube_cluster: KubeCluster, kube_namespace: str) -> None:
    kube_cluster.kubectl("apply", "-n", kube_namespace, "-f", "-", stdin=DEPLOYMENT)

    pods = eventually(lambda: _running_ready_pods(kube_cluster, kube_namespace), what="2 Running, Ready pods")

    ips = [ipaddress.IPv4Address(p["status"]["podIP"]) for p in pods]
    assert all(ip.is_loopback and ip in kube_cluster.pod_network for ip in ips), ips
    assert len(set(ips)) == 2


def test_deleting_a_deployment_collects_its_replicaset_and_pods(kube_cluster: KubeCluster, kube_namespace: str) -> None:
    kube_cluster.kubectl("apply", "-n", kube_namespace, "-f", "-", stdin=DEPLOYMENT)
    eventually(lambda: _running_ready_pods(kube_cluster, kube_namespace), what="2 Running, Ready pods")
    assert _items(kube_cluster, "replicasets", kube_namespace, "-l", "app=web")

    kube_cluster.kubectl("delete", "deployment", "web", "-n", kube_namespace, "--wait=false")

    eventually(
        lambda: not _items(kube_cluster, "replicasets,pods", kube_namespace, "-l", "app=web"),
        what="the garbage collector to delete the ReplicaSet and its pods",
    )


def test_server_reports_the_pinned_version(kube_cluster: KubeCluster) -> None:
    version = json.loads(kube_cluster.kubectl("get", "--raw", "/version").stdout)

    assert version["gitVersion"] == f"v{PINNED.kubernetes}"
    assert (version["major"], version["minor"]) == tuple(PINNED.kubernetes.split(".")[:2])


ROLE = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: reader}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: configmap-reader}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: configmap-reader}
subjects:
- {kind: ServiceAccount, name: reader}
"""


def _as_token(cluster: KubeCluster, token: str, tmp_path: Path) -> KubeCluster:
    """The same cluster seen through a kubeconfig that holds only a bearer token (no admin client cert)."""
    config = json.loads(cluster.kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    config["users"][0]["user"] = {"token": token}
    path = tmp_path / "token.kubeconfig"
    path.write_text(json.dumps(config))
    return KubeCluster(
        name=cluster.name,
        server=cluster.server,
        kubeconfig=path,
        kubectl_path=cluster.kubectl_path,
        helm_path=cluster.helm_path,
        pod_network=cluster.pod_network,
    )


def test_service_account_token_is_held_to_its_role(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    kube_cluster.kubectl("apply", "-n", kube_namespace, "-f", "-", stdin=ROLE)
    kube_cluster.kubectl("create", "configmap", "settings", "-n", kube_namespace, "--from-literal=a=b")
    token = kube_cluster.kubectl("create", "token", "reader", "-n", kube_namespace).stdout.strip()
    reader = _as_token(kube_cluster, token, tmp_path)

    whoami = json.loads(reader.kubectl("auth", "whoami", "-o", "json").stdout)
    assert whoami["status"]["userInfo"]["username"] == f"system:serviceaccount:{kube_namespace}:reader"
    assert reader.kubectl("get", "configmap", "settings", "-n", kube_namespace, "-o", "name").stdout.strip() == (
        "configmap/settings"
    )
    for refused in (
        ("get", "secrets", "-n", kube_namespace),
        ("delete", "configmap", "settings", "-n", kube_namespace),
        ("get", "configmaps", "-n", "default"),
    ):
        answer = reader.kubectl(*refused, check=False)
        assert answer.returncode != 0 and "Forbidden" in answer.stderr, (refused, answer.stderr)


def test_agentry_crd_installs_and_serves_agents(kube_cluster: KubeCluster, kube_namespace: str) -> None:
    install_crd(kube_cluster, CRD.read_text(), "agentdeployments.agentry.dev")

    # Discovery can lag the Established condition by a moment; kubectl must then find the short name `agents`.
    answer = eventually(
        lambda: _succeeded(kube_cluster, "get", "agents", "-n", kube_namespace), what="kubectl get agents to succeed"
    )

    assert "No resources found" in answer.stderr


def _succeeded(cluster: KubeCluster, *args: str) -> subprocess.CompletedProcess[str] | None:
    answer = cluster.kubectl(*args, check=False)
    return answer if answer.returncode == 0 else None
