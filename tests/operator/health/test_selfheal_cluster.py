"""Self-healing end to end: the real operator, the dev pod runner and real runtimes on the local control plane.

KWOK marks pods Running; the pod runner starts the real agent runtime on each pod's loopback IP; the
operator polls those runtimes. So a killed process is a pod that stops answering, exactly as in production.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kube import KubeCluster, eventually
from tests.runtime.servers import chat_completions_app, serve_in_thread
from tests.services import running_redis
from tests.support.operator import OperatorProcess

pytestmark = [pytest.mark.cluster, pytest.mark.services, pytest.mark.slow]

FAST_HEALTH = {"pollIntervalSeconds": 2, "failureThreshold": 2, "startupGraceSeconds": 15, "restartCooldownSeconds": 0}


class Healing:
    """The operator and the pod runner for one test namespace, and helpers to drive agents there."""

    def __init__(self, cluster: KubeCluster, namespace: str, workdir: Path) -> None:
        self.cluster, self.namespace, self.workdir = cluster, namespace, workdir

    def apply_agent(self, name: str, spec: dict[str, Any]) -> None:
        key = secrets.token_hex(32)
        self.cluster.kubectl(
            "create", "secret", "generic", f"{name}-jwt", "-n", self.namespace, f"--from-literal=key={key}"
        )
        spec = {"security": {"auth": {"secretRef": {"name": f"{name}-jwt", "key": "key"}}}, **spec}
        manifest = {
            "apiVersion": "agentry.dev/v1alpha1",
            "kind": "AgentDeployment",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": spec,
        }
        self.cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest))

    def agent(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(
            self.cluster.kubectl("get", "agentdeployment", name, "-n", self.namespace, "-o", "json").stdout
        )
        return found

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        conditions = self.agent(name).get("status", {}).get("conditions", [])
        return next((c for c in conditions if c["type"] == kind), {})

    def pods(self, name: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(
            self.cluster.kubectl(
                "get", "pods", "-n", self.namespace, "-l", f"agentry.dev/agent={name}", "-o", "json"
            ).stdout
        )["items"]
        return [pod for pod in items if not pod["metadata"].get("deletionTimestamp")]

    def answering(self, name: str) -> list[dict[str, Any]]:
        """Running pods whose runtime answers /readyz."""
        return [pod for pod in self.pods(name) if _ready(pod.get("status", {}).get("podIP"))]

    def runtime_pid(self, pod: str) -> int:
        config = self.workdir / self.namespace / pod / "agent.yaml"
        found = subprocess.run(["pgrep", "-f", "--", f"--config {config}"], capture_output=True, text=True, check=False)
        pids = [int(pid) for pid in found.stdout.split()]
        assert len(pids) == 1, f"expected one runtime for {pod}, found {pids}"
        return pids[0]

    def wait_answering(self, name: str, *, replicas: int, timeout: float) -> None:
        """Until `replicas` pods of the agent answer /readyz."""
        eventually(
            lambda: len(self.answering(name)) == replicas, timeout=timeout, what=f"{replicas} answering pods of {name}"
        )

    def wait_polled_healthy(self, name: str, replicas: int = 1) -> None:
        """Until the operator's own polls found the pods healthy (only pods seen up are ever restarted)."""
        eventually(
            lambda: self.agent(name).get("status", {}).get("healthyReplicas") == replicas,
            timeout=30,
            what=f"the operator to see {replicas} healthy pods of {name}",
        )

    def events(self, name: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(
            self.cluster.kubectl(
                "get",
                "events",
                "-n",
                self.namespace,
                "--field-selector",
                f"involvedObject.kind=AgentDeployment,involvedObject.name={name}",
                "-o",
                "json",
            ).stdout
        )["items"]
        return items


def _ready(ip: str | None) -> bool:
    if not ip:
        return False
    try:
        with urllib.request.urlopen(f"http://{ip}:8080/readyz", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture
def healing(agentry_crd: KubeCluster, kube_namespace: str, tmp_path: Path) -> Iterator[Healing]:
    operator = OperatorProcess(
        kubeconfig=agentry_crd.kubeconfig, namespaces=(kube_namespace,), log=tmp_path / "operator.log"
    )
    operator.start()
    workdir = tmp_path / "pods"
    runner_log = (tmp_path / "pod-runner.log").open("wb")
    runner = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "agentry"),
            "dev",
            "pod-runner",
            "--name",
            agentry_crd.name,
            "--namespace",
            kube_namespace,
            "--workdir",
            str(workdir),
            "--interval",
            "0.5",
        ],
        stdout=runner_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=agentry_crd.env,
    )
    try:
        yield Healing(agentry_crd, kube_namespace, workdir)
    finally:
        os.killpg(runner.pid, signal.SIGTERM)
        runner.wait(timeout=60)
        runner_log.close()
        operator.stop()
        for log in (tmp_path / "operator.log", tmp_path / "pod-runner.log", *sorted(workdir.glob("*/*/runtime.log"))):
            print(f"--- {log.relative_to(tmp_path)}\n{log.read_text(errors='replace')[-3000:]}")


def test_killed_runtime_is_restarted_and_the_new_one_answers(healing: Healing) -> None:
    healing.apply_agent("heal", {"agent": {"model": "test"}, "health": FAST_HEALTH})
    first = eventually(lambda: healing.answering("heal"), timeout=90, what="the runtime to answer")[0]
    healing.wait_polled_healthy("heal")
    os.kill(healing.runtime_pid(first["metadata"]["name"]), signal.SIGKILL)
    killed = time.monotonic()
    replacement = eventually(
        lambda: [p for p in healing.answering("heal") if p["metadata"]["name"] != first["metadata"]["name"]],
        timeout=60,
        what="a replacement pod that answers",
    )
    elapsed = time.monotonic() - killed
    # failureThreshold x interval (4 s), plus jitter, a new pod, and a runtime start on a busy machine.
    assert elapsed < 4 + 26, f"replacement answered after {elapsed:.1f}s"
    print(f"killed runtime -> replacement answering: {elapsed:.1f}s")
    assert replacement[0]["status"]["podIP"].startswith("127.")
    status = eventually(
        lambda: (s := healing.agent("heal")["status"]).get("restarts") == 1 and s,
        timeout=30,
        what="status.restarts to count the restart",
    )
    assert status["restarts"] == 1
    reasons = [event["reason"] for event in healing.events("heal")]
    assert "PodRestarted" in reasons


def test_restart_budget_stops_a_restart_loop_and_says_so(healing: Healing) -> None:
    healing.apply_agent("loop", {"agent": {"model": "test"}, "health": {**FAST_HEALTH, "maxRestartsPerHour": 1}})
    first = eventually(lambda: healing.answering("loop"), timeout=90, what="the runtime to answer")[0]
    healing.wait_polled_healthy("loop")
    os.kill(healing.runtime_pid(first["metadata"]["name"]), signal.SIGKILL)
    pod = eventually(
        lambda: [p for p in healing.answering("loop") if p["metadata"]["name"] != first["metadata"]["name"]],
        timeout=60,
        what="the first restart",
    )[0]
    healing.wait_polled_healthy("loop")
    os.kill(healing.runtime_pid(pod["metadata"]["name"]), signal.SIGKILL)
    # PodsUnhealthy first (the new pod is within its start-up grace), then the budget verdict.
    degraded = eventually(
        lambda: (c := healing.condition("loop", "Degraded")).get("reason") == "RestartBudgetExhausted" and c,
        timeout=40,
        what="Degraded=True, RestartBudgetExhausted",
    )
    assert degraded["status"] == "True"
    assert "maxRestartsPerHour=1" in degraded["message"]
    stalled = healing.condition("loop", "Stalled")  # a person must act: kstatus (Flux) says Failed
    assert (stalled.get("status"), stalled.get("reason")) == ("True", "RestartBudgetExhausted"), stalled
    time.sleep(8)  # four more polls: the dead pod stays, no second restart
    assert pod["metadata"]["name"] in [p["metadata"]["name"] for p in healing.pods("loop")]
    assert healing.agent("loop")["status"]["restarts"] == 1
    assert "RestartBudgetExhausted" in [event["reason"] for event in healing.events("loop")]


def test_degraded_dependency_is_reported_not_restarted_and_recovers(healing: Healing) -> None:
    with running_redis() as redis:
        port = redis.port
        healing.cluster.kubectl(
            "create", "secret", "generic", "cache", "-n", healing.namespace, f"--from-literal=url={redis.url}"
        )
        healing.apply_agent(
            "deg",
            {
                "agent": {"model": "test"},
                "health": FAST_HEALTH,
                "services": {"cache": {"urlSecretRef": {"name": "cache", "key": "url"}}},
            },
        )
        pod = eventually(lambda: healing.answering("deg"), timeout=90, what="the runtime to answer")[0]
        healing.wait_polled_healthy("deg")
        assert healing.condition("deg", "Degraded")["status"] == "False"
    degraded = eventually(
        lambda: (c := healing.condition("deg", "Degraded")).get("status") == "True" and c,
        timeout=40,
        what="Degraded=True after Redis stopped",
    )
    assert degraded["reason"] == "PodsDegraded", degraded
    assert "degraded" in degraded["message"]
    assert healing.condition("deg", "Ready")["status"] == "True", "a degraded pod still serves"
    assert healing.condition("deg", "Stalled") == {}, "the operator is on it: not a problem for a person"
    time.sleep(6)
    assert [p["metadata"]["name"] for p in healing.pods("deg")] == [pod["metadata"]["name"]], "no restart"
    assert "PodsDegraded" in [event["reason"] for event in healing.events("deg")]
    with running_redis(port=port):
        eventually(
            lambda: healing.condition("deg", "Degraded").get("status") == "False",
            timeout=60,
            what="Degraded back to False once Redis is back",
        )
    assert healing.agent("deg")["status"].get("restarts", 0) == 0


async def _load(url: str, *, concurrency: int, seconds: float, token: str) -> int:
    import httpx

    sent = 0
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=30) as client:

        async def worker() -> None:
            nonlocal sent
            while time.monotonic() < deadline:
                await client.post(url, json={"prompt": "busy?"}, headers={"Authorization": f"Bearer {token}"})
                sent += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sent


def test_sustained_load_scales_out_then_back_in(healing: Healing, tmp_path: Path) -> None:
    from agent_runtime.security.tokens import mint_token

    with serve_in_thread(chat_completions_app([], delay=1.5)) as llm:
        healing.apply_agent(
            "busy",
            {
                "agent": {"model": "openai-chat:slow", "endpoint": {"baseURL": f"{llm}/v1"}},
                "health": FAST_HEALTH,
                "autoscaling": {
                    "enabled": True,
                    "minReplicas": 1,
                    "maxReplicas": 3,
                    "targetInFlightPerReplica": 2,
                    "scaleDownStabilizationSeconds": 10,
                },
            },
        )
        pod = eventually(lambda: healing.answering("busy"), timeout=90, what="the runtime to answer")[0]
        secret = json.loads(
            healing.cluster.kubectl("get", "secret", "busy-jwt", "-n", healing.namespace, "-o", "json").stdout
        )
        import base64

        token = mint_token(key=base64.b64decode(secret["data"]["key"]), subject="load", roles=["agent_operator"])
        url = f"http://{pod['status']['podIP']}:8080/v1/run"
        sent = asyncio.run(_load(url, concurrency=6, seconds=25, token=token))
        assert sent > 0
        scaled = healing.agent("busy")["status"].get("lastScale")
        assert scaled is not None and scaled["to"] > 1, healing.agent("busy")["status"]
        assert "scale out" in scaled["reason"]
        assert healing.agent("busy")["spec"]["replicas"] >= 2
        back = eventually(
            lambda: (s := healing.agent("busy"))["spec"].get("replicas") == 1 and s,
            timeout=90,
            what="scale back in to 1 after the stabilisation window",
        )
        assert "scale in" in back["status"]["lastScale"]["reason"]
    reasons = [event["reason"] for event in healing.events("busy")]
    assert reasons.count("Scaled") >= 2
    assert "PodRestarted" not in reasons


SOAK_SECONDS = float(os.environ.get("AGENTRY_SOAK_SECONDS", "600"))


def test_many_agents_polled_for_ten_minutes_get_no_restart(healing: Healing) -> None:
    """20 agents with 3 pods each, polled every 10 s for SOAK_SECONDS under light load: zero restarts."""
    from agent_runtime.security.tokens import mint_token

    names = [f"soak-{i:02d}" for i in range(20)]
    for batch in range(0, len(names), 5):  # a few at a time, so 60 runtimes do not all start at once
        for name in names[batch : batch + 5]:
            healing.apply_agent(name, {"agent": {"model": "test"}, "replicas": 3})
        for name in names[batch : batch + 5]:
            healing.wait_answering(name, replicas=3, timeout=240)
    keys = {
        name: json.loads(
            healing.cluster.kubectl("get", "secret", f"{name}-jwt", "-n", healing.namespace, "-o", "json").stdout
        )["data"]["key"]
        for name in names
    }
    import base64

    tokens = {
        name: mint_token(key=base64.b64decode(key), subject="soak", roles=["agent_operator"])
        for name, key in keys.items()
    }
    ips = {name: [p["status"]["podIP"] for p in healing.pods(name)] for name in names}
    pods_before = {name: sorted(p["metadata"]["name"] for p in healing.pods(name)) for name in names}
    started = time.monotonic()
    answered = asyncio.run(_steady_load(ips, tokens, seconds=SOAK_SECONDS))
    print(f"soak: {SOAK_SECONDS:.0f}s, {answered} requests answered")
    for name in names:
        status = healing.agent(name)["status"]
        assert status.get("restarts", 0) == 0, (name, status)
        assert status.get("healthyReplicas") == 3, (name, status)
        assert sorted(p["metadata"]["name"] for p in healing.pods(name)) == pods_before[name]
        assert healing.condition(name, "Degraded")["status"] == "False"
        assert "PodRestarted" not in [event["reason"] for event in healing.events(name)]
    assert time.monotonic() - started >= SOAK_SECONDS


async def _steady_load(ips: dict[str, list[str]], tokens: dict[str, str], *, seconds: float) -> int:
    """About two requests a second spread over every pod: normal load, not saturation."""
    import httpx

    answered = 0
    targets = [(name, ip) for name, pod_ips in ips.items() for ip in pod_ips]
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=10) as client:
        index = 0
        while time.monotonic() < deadline:
            name, ip = targets[index % len(targets)]
            index += 1
            response = await client.post(
                f"http://{ip}:8080/v1/run",
                json={"prompt": "status?"},
                headers={"Authorization": f"Bearer {tokens[name]}"},
            )
            assert response.status_code == 200, response.text
            answered += 1
            await asyncio.sleep(0.5)
    return answered
