"""What the chart's cluster tests share: install the chart, adopt the CRD, ask the API server who may do what."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.helm.chart import CHART, RELEASE, values_args
from tests.kube import KubeCluster, eventually
from tests.support.agents import minimal_spec

CRD_NAME = "agentdeployments.agentry.dev"

SERVICE_MONITOR_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""
"""A stand-in for the Prometheus Operator's CRD: enough for the API server to accept a ServiceMonitor's shape
(kind, metadata, that spec is an object); the real CRD's field checks are not reproduced."""

#: The minimal agent (tests/support/agents.py) as YAML, its JWT key in the Secret `{name}-jwt`.
MINIMAL_AGENT = yaml.safe_dump(
    {
        "apiVersion": "agentry.dev/v1alpha1",
        "kind": "AgentDeployment",
        "metadata": {"name": "{name}"},
        "spec": minimal_spec(instructions="You answer in one sentence.", jwt_secret="{name}-jwt"),
    }
)  # block style: the only braces are the `{name}` placeholders


HEALING_AGENT = """
apiVersion: agentry.dev/v1alpha1
kind: AgentDeployment
metadata:
  name: {name}
spec:
  agent:
    model: test
  security:
    auth:
      secretRef: {{name: {name}-jwt, key: key}}
  health:
    pollIntervalSeconds: 2
    failureThreshold: 1
    startupGraceSeconds: 0
    restartCooldownSeconds: 0
"""
"""An agent whose health monitor restarts an unreachable pod at once (KWOK pods never answer /health)."""


def get_json(cluster: KubeCluster, *args: str) -> dict[str, Any]:
    """`kubectl get ... -o json`, parsed."""
    found: dict[str, Any] = json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)
    return found


def exists(cluster: KubeCluster, *args: str) -> bool:
    """Whether `kubectl get` finds the object."""
    return cluster.kubectl("get", *args, check=False).returncode == 0


@contextmanager
def namespaces(cluster: KubeCluster, count: int) -> Iterator[list[str]]:
    """Extra namespaces for one test (watched, or deliberately not watched), deleted afterwards."""
    names = [f"helm-extra-{secrets.token_hex(3)}" for _ in range(count)]
    for name in names:
        cluster.kubectl("create", "namespace", name)
    try:
        yield names
    finally:
        for name in names:
            cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def install(
    cluster: KubeCluster,
    namespace: str,
    values: dict[str, Any],
    tmp: Path,
    *,
    chart: Path = CHART,
    command: str = "install",
) -> None:
    """`helm install` (or `upgrade`) the chart into `namespace` and wait until its objects are ready.

    `--take-ownership`: the CRD is cluster-wide and may already be there, applied by `kubectl apply -f crds/`
    (the README's way) or kept by an earlier release; the chart takes it over, as a user migrating would.
    `--force-conflicts`: fields that other field managers applied (kubectl) move to Helm instead of failing.
    """
    args = [
        command,
        RELEASE,
        str(chart),
        "--namespace",
        namespace,
        *values_args(values, tmp),
        "--wait",
        "--timeout",
        "120s",
        "--force-conflicts",
    ]
    if command == "install":
        args.append("--take-ownership")
    cluster.helm(*args, timeout=180)


def uninstall(cluster: KubeCluster, namespace: str) -> None:
    """`helm uninstall` the release of `namespace`, waiting until its objects are gone."""
    cluster.helm("uninstall", RELEASE, "--namespace", namespace, "--wait", "--timeout", "120s", timeout=180)


def can_i(cluster: KubeCluster, service_account: str, verb: str, resource: str, *, namespace: str | None) -> bool:
    """`kubectl auth can-i` as the ServiceAccount (impersonated by the admin); None namespace: all namespaces.

    `resource/sub` names a subresource (kubectl itself would read `pods/exec` as the pod named exec).
    """
    scope = ["--all-namespaces"] if namespace is None else ["--namespace", namespace]
    plain, _, sub = resource.partition("/")
    target = [plain, f"--subresource={sub}"] if sub else [plain]
    done = cluster.kubectl("auth", "can-i", verb, *target, f"--as={service_account}", *scope, check=False)
    answer = done.stdout.strip()
    assert answer in ("yes", "no"), f"can-i {verb} {resource}: {done.stdout}{done.stderr}"
    return answer == "yes"


def service_account(namespace: str) -> str:
    """The chart's ServiceAccount (release `agentry`, default values) as an RBAC user name."""
    return f"system:serviceaccount:{namespace}:{RELEASE}"


def create_agent(cluster: KubeCluster, namespace: str, name: str, *, manifest: str = MINIMAL_AGENT) -> None:
    """An agent (minimal unless told) and the Secret it names, in `namespace`."""
    cluster.kubectl(
        "create", "secret", "generic", f"{name}-jwt", "-n", namespace, f"--from-literal=key={secrets.token_hex(32)}"
    )
    cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", stdin=manifest.format(name=name))


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The status condition of one type, or None."""
    for item in obj.get("status", {}).get("conditions", []):
        if item["type"] == kind:
            found: dict[str, Any] = item
            return found
    return None


def wait_ready(cluster: KubeCluster, namespace: str, name: str, *, timeout: float = 90.0) -> dict[str, Any]:
    """Wait until the AgentDeployment is Ready for its current generation; returns the object."""

    def ready() -> dict[str, Any] | None:
        obj = get_json(cluster, "agentdeployment", name, "-n", namespace)
        ok = condition(obj, "Ready")
        current = obj.get("status", {}).get("observedGeneration") == obj["metadata"]["generation"]
        return obj if ok and ok["status"] == "True" and current else None

    return eventually(ready, timeout=timeout, what=f"agentdeployment {namespace}/{name} Ready")


def documents(text: str) -> list[dict[str, Any]]:
    """Non-empty YAML documents."""
    return [doc for doc in yaml.safe_load_all(text) if doc]
