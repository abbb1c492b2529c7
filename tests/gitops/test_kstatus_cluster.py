"""kstatus and the Argo CD health check on AgentDeployments served by the real API server, operator down and up.

Every version of the agent a watch delivers is judged by both: kstatus's Go library (what Flux's `wait: true`
runs) and the Lua check of examples/argocd-application.yaml. KWOK marks pods Ready, so rollouts complete.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kube import KubeCluster, eventually
from tests.support.agents import manifest
from tests.support.operator import OperatorProcess

from .argocd import argocd_health
from .kstatus import ARGO_HEALTH, Kstatus

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]


class Watch:
    """Every version of one AgentDeployment that `kubectl get -w -o json` prints (a GET, then the watch)."""

    def __init__(self, cluster: KubeCluster, namespace: str, name: str, *, log: Path) -> None:
        argv = [str(cluster.kubectl_path), "get", "agentdeployment", name, "-n", namespace, "-w", "-o", "json"]
        self.log = log
        with log.open("w") as errors:
            self.process = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL, env=cluster.env, text=True
            )
        self.objects: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        # Watching from here on only once the GET has arrived: a change made before then would be in it, unseen.
        eventually(lambda: self.objects, what="the first object from kubectl get -w", context=self.describe)

    def _read(self) -> None:
        assert self.process.stdout is not None
        lines: list[str] = []
        for line in self.process.stdout:  # pretty-printed objects, each closed by a "}" in column 0
            lines.append(line)
            if line.rstrip("\n") == "}":
                self.objects.append(json.loads("".join(lines)))
                lines = []

    def describe(self) -> str:
        """For a failure message: how much arrived, and what kubectl said."""
        return f"{len(self.objects)} objects, kubectl exit {self.process.poll()}: {self.log.read_text()[-2000:]}"

    def latest(self) -> dict[str, Any] | None:
        return self.objects[-1] if self.objects else None

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def cluster(agentry_crd: KubeCluster) -> KubeCluster:
    return agentry_crd


@pytest.fixture
def operator(cluster: KubeCluster, kube_namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    """The operator for this namespace, not started: each test starts it when its story needs it."""
    process = OperatorProcess(kubeconfig=cluster.kubeconfig, namespaces=(kube_namespace,), log=tmp_path / "op.log")
    yield process
    assert process.stop() == 0, process.tail()
    assert "Traceback" not in (process.log.read_text() if process.log.exists() else ""), process.tail(200)


def apply_agent(cluster: KubeCluster, namespace: str, name: str) -> None:
    body = yaml.safe_dump(manifest(name, namespace))
    cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", stdin=body)


def get_agent(cluster: KubeCluster, namespace: str, name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(
        cluster.kubectl("get", "agentdeployment", name, "-n", namespace, "-o", "json").stdout
    )
    return body


def verdicts(kstatus: Kstatus, objects: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """(observedGeneration, kstatus status) of each object, consecutive repeats collapsed; Argo CD must agree."""
    seen: list[tuple[int, str]] = []
    for obj, verdict in zip(objects, kstatus.compute(objects), strict=True):
        health, message = argocd_health(obj)
        assert health == ARGO_HEALTH[verdict.status], f"kstatus {verdict}, Argo CD {health}: {message}\n{obj}"
        step = (int(obj["status"]["observedGeneration"]), verdict.status)
        if not seen or seen[-1] != step:
            seen.append(step)
    return seen


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in obj["status"].get("conditions") or []}


def test_a_new_agent_is_in_progress_until_the_operator_has_rolled_it_out(
    cluster: KubeCluster, kube_namespace: str, kstatus: Kstatus, operator: OperatorProcess, tmp_path: Path
) -> None:
    cluster.kubectl("create", "secret", "generic", "jwt", "--from-literal=key=k", "-n", kube_namespace)
    apply_agent(cluster, kube_namespace, "fresh")
    served = get_agent(cluster, kube_namespace, "fresh")
    assert served["metadata"]["generation"] == 1
    assert served["status"]["observedGeneration"] == 0  # the CRD's default, with no operator anywhere near
    assert kstatus.one(served).status == "InProgress"
    assert argocd_health(served)[0] == "Progressing"
    listed = cluster.kubectl("get", "agents", "-n", kube_namespace).stdout.splitlines()
    assert listed[0].split()[:3] == ["NAME", "MODEL", "READY"]
    assert listed[1].split()[:2] == ["fresh", "test"]

    watch = Watch(cluster, kube_namespace, "fresh", log=tmp_path / "watch.log")
    try:
        cluster.kubectl("label", "agentdeployment", "fresh", "team=a", "-n", kube_namespace)
        eventually(lambda: len(watch.objects) >= 2, what="the labelled agent from the watch", context=watch.describe)
        assert [o["status"]["observedGeneration"] for o in watch.objects] == [0, 0]

        operator.start()

        def current() -> bool:
            latest = watch.latest()
            return latest is not None and kstatus.one(latest).status == "Current"

        eventually(current, timeout=60, what="kstatus Current", context=operator.tail)
    finally:
        watch.stop()
    steps = verdicts(kstatus, watch.objects)
    assert steps[0] == (0, "InProgress")
    assert (1, "InProgress") in steps  # observed, Deployment not yet available: the rollout
    assert steps[-1] == (1, "Current")
    final = watch.objects[-1]
    assert final["status"]["url"] == f"http://fresh.{kube_namespace}.svc:8080"
    assert "Stalled" not in conditions(final)


def test_a_missing_secret_is_failed_until_it_is_created(
    cluster: KubeCluster, kube_namespace: str, kstatus: Kstatus, operator: OperatorProcess, tmp_path: Path
) -> None:
    apply_agent(cluster, kube_namespace, "needy")
    watch = Watch(cluster, kube_namespace, "needy", log=tmp_path / "watch.log")
    try:
        operator.start()

        def judged(status: str) -> bool:
            latest = watch.latest()
            return latest is not None and kstatus.one(latest).status == status

        eventually(lambda: judged("Failed"), timeout=60, what="kstatus Failed", context=operator.tail)
        stalled = conditions(watch.objects[-1])["Stalled"]
        assert (stalled["status"], stalled["reason"]) == ("True", "SecretNotFound")
        assert "Secret 'jwt' not found" in stalled["message"]
        assert kstatus.one(watch.objects[-1]).message == stalled["message"]
        assert argocd_health(watch.objects[-1]) == ("Degraded", f"SecretNotFound: {stalled['message']}")

        cluster.kubectl("create", "secret", "generic", "jwt", "--from-literal=key=k", "-n", kube_namespace)
        eventually(lambda: judged("Current"), timeout=60, what="kstatus Current", context=operator.tail)
    finally:
        watch.stop()
    steps = [status for _, status in verdicts(kstatus, watch.objects)]
    assert steps[0] == "InProgress"
    assert "Failed" in steps[1:-1]
    assert steps[-1] == "Current"
    assert "Stalled" not in conditions(watch.objects[-1])
