"""The chart on the real API server: every rendering accepted, install/upgrade/uninstall, least-privilege RBAC."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.chart import CHART, RELEASE, render
from tests.helm.clusterkit import (
    CRD_NAME,
    SERVICE_MONITOR_CRD,
    can_i,
    create_agent,
    exists,
    get_json,
    install,
    namespaces,
    service_account,
    uninstall,
)
from tests.helm.test_render import MATRIX
from tests.kube import KubeCluster, install_crd

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.mark.parametrize("case", list(MATRIX))
def test_rendering_accepted_by_the_api_server(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path, case: str
) -> None:
    """Server-side dry run of each rendering of the matrix (watched namespaces replaced by real ones)."""
    values: dict[str, Any] = dict(MATRIX[case])
    if values.get("metrics", {}).get("serviceMonitor", {}).get("enabled"):
        install_crd(kube_cluster, SERVICE_MONITOR_CRD, "servicemonitors.monitoring.coreos.com")
    with namespaces(kube_cluster, 2) as extra:
        if "watchNamespaces" in values:
            values["watchNamespaces"] = extra
        text = render(values, tmp_path, namespace=kube_namespace)
        done = kube_cluster.kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", stdin=text)
    applied = [line for line in done.stdout.splitlines() if "(server dry run)" in line]
    assert len(applied) == len([d for d in yaml.safe_load_all(text) if d]), done.stdout
    assert "PodSecurity" not in done.stderr, done.stderr


def test_pod_security_check_is_live(kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path) -> None:
    """The check above can fail: a weakened security context draws the API server's PodSecurity warning."""
    values = {"crds": {"enabled": False}, "securityContext": {"allowPrivilegeEscalation": True}}
    text = render(values, tmp_path, namespace=kube_namespace)
    done = kube_cluster.kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", stdin=text)
    assert 'would violate PodSecurity "restricted' in done.stderr


@pytest.fixture
def kube_namespace(kube_namespace: str, kube_cluster: KubeCluster) -> str:
    """The test's namespace with the `restricted` Pod Security Standard enforced by the API server's admission."""
    kube_cluster.kubectl(
        "label",
        "namespace",
        kube_namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
    )
    return kube_namespace


def _bumped_chart(tmp: Path) -> Path:
    """A copy of the chart at 0.1.1 whose CRD has one more printer column, as a new release would."""
    chart = tmp / "agentry"
    shutil.copytree(CHART, chart)
    meta = chart / "Chart.yaml"
    meta.write_text(meta.read_text().replace("version: 0.1.0", "version: 0.1.1"))
    crd_file = chart / "files" / "crds" / "agentry.dev_agentdeployments.yaml"
    crd = yaml.safe_load(crd_file.read_text())
    crd["spec"]["versions"][0]["additionalPrinterColumns"].append(
        {"name": "Instructions", "type": "string", "jsonPath": ".spec.agent.instructions", "priority": 1}
    )
    crd_file.write_text(yaml.safe_dump(crd, sort_keys=False))
    return chart


def _columns(cluster: KubeCluster) -> list[str]:
    crd = get_json(cluster, "crd", CRD_NAME)
    return [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]


def test_install_upgrade_uninstall(kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path) -> None:
    ns = kube_namespace
    install(kube_cluster, ns, {}, tmp_path)
    deployment = get_json(kube_cluster, "deployment", RELEASE, "-n", ns)
    # Its pod was admitted under the enforced `restricted` Pod Security Standard.
    assert deployment["status"].get("readyReplicas") == 1
    crd = get_json(kube_cluster, "crd", CRD_NAME)
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["metadata"]["annotations"]["meta.helm.sh/release-namespace"] == ns

    create_agent(kube_cluster, ns, "survivor")
    before = get_json(kube_cluster, "agentdeployment", "survivor", "-n", ns)

    install(kube_cluster, ns, {}, tmp_path, chart=_bumped_chart(tmp_path), command="upgrade")
    assert "Instructions" in _columns(kube_cluster)
    after = get_json(kube_cluster, "agentdeployment", "survivor", "-n", ns)
    for field in ("uid", "resourceVersion", "generation"):
        assert after["metadata"][field] == before["metadata"][field]
    assert after["spec"] == before["spec"]

    uninstall(kube_cluster, ns)
    assert not exists(kube_cluster, "deployment", RELEASE, "-n", ns)
    assert not exists(kube_cluster, "clusterrole", f"{RELEASE}-{ns}")
    assert exists(kube_cluster, "crd", CRD_NAME), "crds.keep: the CRD must survive helm uninstall"
    kept = get_json(kube_cluster, "agentdeployment", "survivor", "-n", ns)
    assert kept["metadata"]["uid"] == before["metadata"]["uid"]

    # Leave the CRD as the repository defines it for the tests that follow.
    install(kube_cluster, ns, {}, tmp_path)
    assert "Instructions" not in _columns(kube_cluster)
    uninstall(kube_cluster, ns)


# What the operator never does; each must be refused to its ServiceAccount in both modes.
NEVER = [
    ("delete", "nodes"),
    ("create", "clusterroles"),
    ("create", "rolebindings"),
    ("update", "customresourcedefinitions"),
    ("delete", "customresourcedefinitions"),
    ("create", "pods/exec"),
    ("list", "secrets"),
    ("create", "secrets"),
    ("update", "secrets"),
    ("delete", "agentdeployments.agentry.dev"),
    ("impersonate", "serviceaccounts"),
    ("create", "serviceaccounts/token"),
    ("escalate", "roles"),
    ("get", "pods/log"),
    ("create", "pods"),
    ("delete", "events"),
    ("update", "agentdeployments.agentry.dev/status"),
    ("create", "agentdeployments.agentry.dev"),
]


@pytest.mark.parametrize("mode", ["cluster", "namespaced"])
def test_service_account_is_least_privilege(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path, mode: str
) -> None:
    ns = kube_namespace
    with namespaces(kube_cluster, 2) as (watched, elsewhere):
        values = {"watchNamespaces": [watched]} if mode == "namespaced" else {}
        install(kube_cluster, ns, values, tmp_path)
        try:
            sa = service_account(ns)
            for target in (watched, ns, elsewhere):
                for verb, resource in NEVER:
                    assert not can_i(kube_cluster, sa, verb, resource, namespace=target), (verb, resource, target)
            assert not can_i(kube_cluster, sa, "delete", "nodes", namespace=None)
            assert can_i(kube_cluster, sa, "get", "secrets", namespace=watched)
            assert can_i(kube_cluster, sa, "patch", "agentdeployments.agentry.dev/status", namespace=watched)
            assert can_i(kube_cluster, sa, "patch", "agentdeployments.agentry.dev/scale", namespace=watched)
            assert can_i(kube_cluster, sa, "delete", "pods", namespace=watched)
            assert can_i(kube_cluster, sa, "create", "events", namespace=watched)
            assert can_i(kube_cluster, sa, "watch", "customresourcedefinitions", namespace=None)
            if mode == "namespaced":
                # Outside its namespaces it may not even read a Secret or an agent.
                for target in (ns, elsewhere):
                    assert not can_i(kube_cluster, sa, "get", "secrets", namespace=target)
                    assert not can_i(kube_cluster, sa, "list", "agentdeployments.agentry.dev", namespace=target)
                    assert not can_i(kube_cluster, sa, "create", "deployments.apps", namespace=target)
                assert not can_i(kube_cluster, sa, "list", "agentdeployments.agentry.dev", namespace=None)
                assert not can_i(kube_cluster, sa, "get", "secrets", namespace=None)
        finally:
            uninstall(kube_cluster, ns)
