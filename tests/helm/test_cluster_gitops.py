"""GitOps on the real API server: a second apply of the examples changes nothing; the operator does not churn.

Churn (an object rewritten on every reconcile) is what Argo CD and Flux would see as endless drift.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.chart import ROOT
from tests.helm.clusterkit import CRD_NAME, documents, get_json, install, uninstall, wait_ready
from tests.helm.operatorkit import chart_environment, forbidden_lines, running_operator, service_account_kubeconfig
from tests.kube import KubeCluster, install_crd

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

FIELD_MANAGER = "gitops-test"
"""Stands for kustomize-controller or argocd-controller: one field manager applying the same manifests."""

SECRETS = {
    "hello-jwt": "key",
    "local-llama-jwt": "key",
    "support-jwt": "key",
    "support-pii": "key",
    "support-llm": "api-key",
    "support-pg": "url",
    "support-redis": "url",
}
"""Every Secret the examples reference (name: key), so that they can become Ready."""


def _examples(cluster: KubeCluster, namespace: str) -> str:
    """`kubectl kustomize examples/` (what both tools render), moved into the test's namespace."""
    rendered = documents(cluster.kubectl("kustomize", str(ROOT / "examples")).stdout)
    for doc in rendered:
        doc["metadata"]["namespace"] = namespace
    return yaml.safe_dump_all(rendered)


def _apply(cluster: KubeCluster, text: str) -> None:
    cluster.kubectl("apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", "-", stdin=text)


def _state(cluster: KubeCluster, namespace: str) -> dict[str, Any]:
    items = get_json(cluster, "agentdeployments", "-n", namespace, "--show-managed-fields")["items"]
    return {
        item["metadata"]["name"]: {
            "resourceVersion": item["metadata"]["resourceVersion"],
            "generation": item["metadata"]["generation"],
            "managedFields": item["metadata"]["managedFields"],
        }
        for item in items
    }


def _no_diff(cluster: KubeCluster, text: str) -> None:
    """`kubectl diff --server-side` exits 0 when applying would change nothing: the GitOps tools' drift check."""
    done = cluster.kubectl(
        "diff", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", "-", stdin=text, check=False
    )
    assert done.returncode == 0, f"drift:\n{done.stdout}{done.stderr}"


def prepare(cluster: KubeCluster, namespace: str) -> str:
    """The CRD present, the examples' Secrets created, and the examples rendered for `namespace`."""
    install_crd(cluster, (ROOT / "crds" / "agentry.dev_agentdeployments.yaml").read_text(), CRD_NAME)
    for name, key in SECRETS.items():
        cluster.kubectl(
            "create", "secret", "generic", name, "-n", namespace, f"--from-literal={key}={secrets.token_hex(16)}"
        )
    return _examples(cluster, namespace)


def _without_version(state: dict[str, Any]) -> dict[str, Any]:
    return {name: {k: v for k, v in item.items() if k != "resourceVersion"} for name, item in state.items()}


def test_second_apply_changes_nothing(kube_cluster: KubeCluster, kube_namespace: str) -> None:
    """Nothing moves, but for one write: the first update of a new agent stores the status the CRD defaults.

    The API server fills `status: {observedGeneration: 0, ...}` in on every read (so kstatus sees a new agent
    as not yet observed) and stores it with the next write of the object, which moves resourceVersion once
    and nothing else. On a cluster with the operator running, its first status write is that write.
    """
    text = prepare(kube_cluster, kube_namespace)
    _apply(kube_cluster, text)
    first = _state(kube_cluster, kube_namespace)
    assert sorted(first) == ["hello", "local-llama", "support-triage"]

    _no_diff(kube_cluster, text)
    _apply(kube_cluster, text)
    stored = _state(kube_cluster, kube_namespace)
    assert _without_version(stored) == _without_version(first)
    _no_diff(kube_cluster, text)
    _apply(kube_cluster, text)
    assert _state(kube_cluster, kube_namespace) == stored


def _outside_status(cluster: KubeCluster, namespace: str) -> dict[str, Any]:
    """Everything of the agents that reconcile churn would move.

    Spec, generation, labels, annotations, and every field manager's entry except the status subresource's
    (status records observed state, not desired state).
    """
    items = get_json(cluster, "agentdeployments", "-n", namespace, "--show-managed-fields")["items"]
    return {
        item["metadata"]["name"]: {
            "generation": item["metadata"]["generation"],
            "spec": item["spec"],
            "labels": item["metadata"].get("labels"),
            "annotations": item["metadata"].get("annotations"),
            "managedFields": [m for m in item["metadata"]["managedFields"] if m.get("subresource") != "status"],
        }
        for item in items
    }


def test_operator_does_not_churn_synced_agents(kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path) -> None:
    """The operator (chart RBAC, cluster mode) makes the examples Ready, then leaves what git declares alone.

    Sampled every second for 20 s: no spec, generation, label, annotation or non-status managedFields change (kopf
    rewriting its annotations or the operator re-applying the agent would show here), and a sync stays a no-op.
    Status writes are allowed: the health monitor records what it observes (KWOK pods do not answer /health, so
    here it has plenty to record), and neither Argo CD nor Flux compares status.
    """
    ns = kube_namespace
    text = prepare(kube_cluster, ns)
    install(kube_cluster, ns, {}, tmp_path)
    try:
        kubeconfig = service_account_kubeconfig(kube_cluster, ns, tmp_path)
        log = tmp_path / "operator.log"
        with running_operator(kubeconfig=kubeconfig, env=chart_environment(kube_cluster, ns), log=log):
            _apply(kube_cluster, text)
            for name in ("hello", "local-llama", "support-triage"):
                wait_ready(kube_cluster, ns, name)
            settled = _outside_status(kube_cluster, ns)
            for _ in range(20):
                time.sleep(1)
                assert _outside_status(kube_cluster, ns) == settled, log.read_text()[-4000:]
            _no_diff(kube_cluster, text)
            _apply(kube_cluster, text)
            assert _outside_status(kube_cluster, ns) == settled
        assert forbidden_lines(log) == []
    finally:
        uninstall(kube_cluster, ns)
