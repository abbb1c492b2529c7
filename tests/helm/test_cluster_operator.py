"""The chart's RBAC is sufficient: the real operator, as the chart's ServiceAccount, does its whole job.

In both RBAC modes, without one refusal in its log: an agent becomes Ready, hand-deleted and hand-edited children
are restored, the health monitor replaces a pod that does not answer; in namespace mode other namespaces are left
alone.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agent_operator.kinds import CHILD_KINDS
from tests.helm.clusterkit import HEALING_AGENT, create_agent, get_json, install, namespaces, uninstall, wait_ready
from tests.helm.operatorkit import chart_environment, forbidden_lines, running_operator, service_account_kubeconfig
from tests.kube import KubeCluster, eventually
from tests.operator.health.reports import report_body

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


CHILDREN = tuple(child.plural for child in CHILD_KINDS if not child.optional)


def _uids(cluster: KubeCluster, namespace: str, agent: str) -> dict[str, str]:
    found = get_json(cluster, ",".join(CHILDREN), "-n", namespace, "-l", f"agentry.dev/agent={agent}")["items"]
    return {item["kind"]: item["metadata"]["uid"] for item in found}


def restore_after_hand_edits(cluster: KubeCluster, namespace: str, agent: str) -> None:
    """The drift paths need their own verbs: children deleted by hand come back, a hand-edited Service port too."""
    before = _uids(cluster, namespace, agent)
    assert set(before) == {"Deployment", "Service", "ConfigMap", "ServiceAccount"}
    cluster.kubectl("delete", "configmap,serviceaccount", "-n", namespace, "-l", f"agentry.dev/agent={agent}")
    cluster.kubectl(
        "patch",
        "service",
        agent,
        "-n",
        namespace,
        "--type=json",
        "-p",
        '[{"op":"replace","path":"/spec/ports/0/port","value":9999}]',
    )

    def restored() -> bool:
        now = _uids(cluster, namespace, agent)
        found = cluster.kubectl("get", "service", agent, "-n", namespace, "-o", "json", check=False)
        if found.returncode != 0:  # the operator recreates a Service whose edit apply cannot undo
            return False
        service = json.loads(found.stdout)
        fresh = now.get("ConfigMap") not in (None, before["ConfigMap"]) and now.get("ServiceAccount") not in (
            None,
            before["ServiceAccount"],
        )
        return fresh and service["spec"]["ports"][0]["port"] == 8080

    eventually(restored, timeout=60, what="the hand-deleted and hand-edited children to be restored")
    wait_ready(cluster, namespace, agent)


def _pod_uids(cluster: KubeCluster, namespace: str, agent: str) -> set[str]:
    pods = get_json(cluster, "pods", "-n", namespace, "-l", f"agentry.dev/agent={agent}")["items"]
    return {pod["metadata"]["uid"] for pod in pods}


@contextmanager
def answering_health(ip: str) -> Iterator[None]:
    """A stand-in runtime on the pod's loopback IP that answers /health healthy, until the block ends."""

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(report_body()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((ip, 8080), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def restart_unhealthy_pod(cluster: KubeCluster, namespace: str) -> None:
    """The health monitor's path: watch the agent's pods, poll them, delete the one that stopped answering.

    Only a pod that answered once is ever restarted, so a stand-in answers first and then goes away, as a
    crashed runtime would.
    """
    create_agent(cluster, namespace, "healer", manifest=HEALING_AGENT)

    def running_ip() -> str:
        pods = get_json(cluster, "pods", "-n", namespace, "-l", "agentry.dev/agent=healer")["items"]
        return str(pods[0]["status"].get("podIP", "")) if pods else ""

    ip = eventually(running_ip, timeout=60, what="the healer's pod IP")
    first = _pod_uids(cluster, namespace, "healer")
    with answering_health(ip):
        eventually(
            lambda: (
                get_json(cluster, "agentdeployment", "healer", "-n", namespace).get("status", {}).get("healthyReplicas")
                == 1
            ),
            timeout=60,
            what="the health monitor to poll the pod healthy",
        )
    eventually(
        lambda: _pod_uids(cluster, namespace, "healer") - first,
        timeout=60,
        what="the pod that stopped answering to be deleted by the health monitor and replaced",
    )


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
                    restore_after_hand_edits(kube_cluster, watched, "hello")
                    restart_unhealthy_pod(kube_cluster, watched)
                    if mode == "cluster":
                        wait_ready(kube_cluster, elsewhere, "other")
                    else:
                        time.sleep(3)  # it had every chance to touch the other namespace
                        other = get_json(kube_cluster, "agentdeployment", "other", "-n", elsewhere)
                        status = other.get("status") or {}  # the CRD's default, never written by an operator
                        assert status.get("observedGeneration") == 0 and not status.get("conditions"), status
                        assert not get_json(kube_cluster, "deployments", "-n", elsewhere)["items"]
                except BaseException:
                    print(log.read_text(errors="replace")[-6000:])
                    raise
            assert forbidden_lines(log) == []
        finally:
            uninstall(kube_cluster, ns)
