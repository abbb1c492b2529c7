"""The chart's RBAC is sufficient: the real operator, as the chart's ServiceAccount, makes an agent Ready.

In both RBAC modes, without one refusal in its log; in namespace mode it leaves other namespaces alone.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.helm.clusterkit import create_agent, get_json, install, namespaces, uninstall, wait_ready
from tests.helm.operatorkit import chart_environment, forbidden_lines, running_operator, service_account_kubeconfig
from tests.kube import KubeCluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.mark.parametrize("mode", ["cluster", "namespaced"])
def test_operator_with_chart_rbac_reconciles_to_ready(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path, mode: str
) -> None:
    ns = kube_namespace
    with namespaces(kube_cluster, 2) as (watched, elsewhere):
        install(kube_cluster, ns, {"watchNamespaces": [watched]} if mode == "namespaced" else {}, tmp_path)
        try:
            log = tmp_path / "operator.log"
            kubeconfig = service_account_kubeconfig(kube_cluster, ns, tmp_path)
            with running_operator(kubeconfig=kubeconfig, env=chart_environment(kube_cluster, ns), log=log):
                create_agent(kube_cluster, watched, "hello")
                create_agent(kube_cluster, elsewhere, "other")
                try:
                    agent = wait_ready(kube_cluster, watched, "hello")
                    assert agent["status"]["url"]
                    for kind in ("deployment", "service", "configmap", "serviceaccount"):
                        assert get_json(kube_cluster, kind, "-n", watched, "-l", "agentry.dev/agent=hello")["items"]
                    if mode == "cluster":
                        wait_ready(kube_cluster, elsewhere, "other")
                    else:
                        time.sleep(3)  # it had every chance to touch the other namespace
                        other = get_json(kube_cluster, "agentdeployment", "other", "-n", elsewhere)
                        assert "status" not in other
                        assert not get_json(kube_cluster, "deployments", "-n", elsewhere)["items"]
                except BaseException:
                    print(log.read_text(errors="replace")[-6000:])
                    raise
            assert forbidden_lines(log) == []
        finally:
            uninstall(kube_cluster, ns)
