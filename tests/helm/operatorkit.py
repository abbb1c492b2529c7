"""Run the real operator as a subprocess with the chart's ServiceAccount credentials instead of admin ones."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from agentry_dev.cluster.network import free_ports
from tests.helm.chart import RELEASE
from tests.helm.clusterkit import get_json
from tests.kube import KubeCluster
from tests.support.operator import OperatorProcess

RBAC_REFUSAL = re.compile(r"cannot [a-z]+ resource|Not enough permissions")
"""An RBAC refusal in the operator's log: the API server's `User "..." cannot VERB resource "..."`, or kopf's
warning when it may not watch something. (A 403 for a namespace being terminated is not RBAC and not counted.)"""


def service_account_kubeconfig(cluster: KubeCluster, namespace: str, tmp: Path) -> Path:
    """A kubeconfig that authenticates as the chart's ServiceAccount, with a token from `kubectl create token`."""
    token = cluster.kubectl("create", "token", RELEASE, "-n", namespace, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    server = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": server}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "local", "user": "operator"}}],
        "current-context": "operator",
    }
    path = tmp / "operator.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def chart_environment(cluster: KubeCluster, namespace: str) -> dict[str, str]:
    """The AGENTRY_* variables of the installed operator Deployment, as the pod would see them."""
    deployment = get_json(cluster, "deployment", RELEASE, "-n", namespace)
    env: dict[str, str] = {}
    for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
        value: Any = item.get("value")
        if value is None and item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            value = namespace
        env[item["name"]] = "" if value is None else str(value)
    # Outside a pod the endpoints must not clash with another process's: free loopback ports.
    liveness, metrics = free_ports(2)
    env["AGENTRY_LIVENESS_ENDPOINT"] = f"http://127.0.0.1:{liveness}/healthz"
    if env.get("AGENTRY_METRICS_ENDPOINT", "unset"):  # an empty value (metrics off in the chart) stays off
        env["AGENTRY_METRICS_ENDPOINT"] = f"http://127.0.0.1:{metrics}/metrics"
    env["AGENTRY_LOG_FORMAT"] = "text"
    return env


@contextmanager
def running_operator(*, kubeconfig: Path, env: dict[str, str], log: Path) -> Iterator[OperatorProcess]:
    """The operator with exactly the chart's environment, for the duration of the block (stopped by its pid)."""
    process = OperatorProcess(kubeconfig=kubeconfig, namespaces=(), log=log, exact_env=env)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def forbidden_lines(log: Path) -> list[str]:
    """Lines where RBAC refused the operator something."""
    return [line for line in log.read_text(errors="replace").splitlines() if RBAC_REFUSAL.search(line)]
