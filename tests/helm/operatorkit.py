"""Run the real operator as a subprocess with the chart's ServiceAccount credentials instead of admin ones."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from agentry_dev.cluster.network import free_ports
from tests.helm.chart import RELEASE
from tests.helm.clusterkit import get_json
from tests.kube import KubeCluster

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


def operator_command() -> list[str]:
    """The installed `agentry-operator` console script (next to this Python), as the image runs it."""
    script = Path(sys.executable).with_name("agentry-operator")
    found = str(script) if script.exists() else shutil.which("agentry-operator")
    assert found, "the agentry-operator console script is not installed (pip install -e '.[operator]')"
    return [found]


@contextmanager
def running_operator(*, kubeconfig: Path, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The operator process for the duration of the block; stopped by its pid (SIGTERM, then SIGKILL)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTRY_") and k != "KUBECONFIG"}
    full_env.update(env, KUBECONFIG=str(kubeconfig))
    with log.open("wb") as out:
        process = subprocess.Popen(operator_command(), env=full_env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def forbidden_lines(log: Path) -> list[str]:
    """Lines where RBAC refused the operator something."""
    return [line for line in log.read_text(errors="replace").splitlines() if RBAC_REFUSAL.search(line)]
