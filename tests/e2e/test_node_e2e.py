"""Agentry as users run it: the chart's operator pod, agents' pods on the real image, Services, self-healing."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from agent_runtime.security.tokens import mint_token
from agentry_dev import deploy
from tests.e2e.conftest import NodeCluster, apply_agent
from tests.kube import eventually
from tests.services import _pg_bin, running_postgres

pytestmark = [pytest.mark.node, pytest.mark.slow]

FAST_HEALTH = {"pollIntervalSeconds": 2, "failureThreshold": 2, "startupGraceSeconds": 10, "restartCooldownSeconds": 0}


def _condition(node_cluster: NodeCluster, namespace: str, name: str, kind: str) -> dict[str, Any]:
    agent = node_cluster.json("agentdeployment", name, "-n", namespace)
    return next((c for c in agent.get("status", {}).get("conditions", []) if c["type"] == kind), {})


def _wait_ready(node_cluster: NodeCluster, namespace: str, name: str, *, timeout: float = 120) -> None:
    eventually(
        lambda: _condition(node_cluster, namespace, name, "Ready").get("status") == "True",
        timeout=timeout,
        what=f"agent {name} Ready",
        context=lambda: (
            node_cluster.kube.kubectl("get", "pods,agents", "-n", namespace, "-o", "wide").stdout
            + node_cluster.kube.kubectl("logs", "-n", deploy.RELEASE, f"deploy/{deploy.RELEASE}", "--tail=30").stdout
        ),
    )


def _pods(node_cluster: NodeCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = node_cluster.json("pods", "-n", namespace, "-l", f"agentry.dev/agent={name}")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def _service_ip(node_cluster: NodeCluster, namespace: str, name: str, *, port: int = 8080) -> str:
    """The Service's ClusterIP, once kube-proxy routes it.

    A pod turns Ready before kube-proxy has written the Service's rules from the new EndpointSlice (a sync is
    asynchronous); a client calling in between gets "connection refused", which is not what these tests judge.
    """
    ip = str(node_cluster.json("service", name, "-n", namespace)["spec"]["clusterIP"])

    def routed() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(2)
            return probe.connect_ex((ip, port)) == 0

    eventually(routed, timeout=60, what=f"kube-proxy to route Service {namespace}/{name}")
    return ip


def _run(url: str, token: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url,
        data=json.dumps({"prompt": "What is Agentry?"}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, {}


def _stream(url: str, token: str) -> list[str]:
    """The event names of a streamed run, read line by line as they come."""
    request = urllib.request.Request(
        url,
        data=json.dumps({"prompt": "What is Agentry?"}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.headers["Content-Type"].startswith("text/event-stream")
        return [line.decode().removeprefix("event: ").strip() for line in answer if line.startswith(b"event: ")]


def _exec(node_cluster: NodeCluster, namespace: str, pod: str, code: str) -> subprocess.CompletedProcess[str]:
    return node_cluster.kube.kubectl("exec", "-n", namespace, pod, "--", "python", "-c", code, check=False)


def test_the_operator_runs_as_a_pod_of_the_chart_under_its_own_service_account(node_cluster: NodeCluster) -> None:
    pods = node_cluster.json("pods", "-n", deploy.RELEASE, "-l", "app.kubernetes.io/name=agentry")["items"]

    assert len(pods) == 1
    pod = pods[0]
    container = pod["spec"]["containers"][0]
    assert pod["spec"]["nodeName"] == node_cluster.cluster.layout.node_name
    assert pod["spec"]["serviceAccountName"] == deploy.RELEASE
    assert container["image"] == node_cluster.images.operator.ref
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert all(s["ready"] for s in pod["status"]["containerStatuses"])


def test_an_agent_runs_the_runtime_image_with_the_rendered_pod_spec(node_cluster: NodeCluster, namespace: str) -> None:
    key = apply_agent(node_cluster, namespace, "hello")
    _wait_ready(node_cluster, namespace, "hello")
    [pod] = _pods(node_cluster, namespace, "hello")
    name = pod["metadata"]["name"]
    container = pod["spec"]["containers"][0]

    assert pod["spec"]["nodeName"] == node_cluster.cluster.layout.node_name
    assert container["image"] == node_cluster.images.runtime.ref
    assert all(s["ready"] for s in pod["status"]["containerStatuses"]), "readiness probe passes"
    assert node_cluster.kube.pod_network.overlaps(node_cluster.kube.pod_network) and pod["status"]["podIP"].startswith(
        node_cluster.cluster.layout.node_subnet.rsplit(".", 1)[0]
    )
    written = _exec(node_cluster, namespace, name, "open('/agentry-e2e', 'w')")
    assert written.returncode != 0 and "Read-only file system" in written.stderr
    secret_mounts = [m["mountPath"] for m in container["volumeMounts"] if "secret" in m["name"]]
    assert secret_mounts, container["volumeMounts"]
    listed = _exec(node_cluster, namespace, name, f"import os; print(sorted(os.listdir({secret_mounts[0]!r})))")
    assert listed.returncode == 0, listed.stderr

    token = mint_token(key=key, subject="e2e-user", roles=["agent_operator"])
    url = f"http://{_service_ip(node_cluster, namespace, 'hello')}:8080/v1/run"
    status, body = _run(url, token)
    assert status == 200, body
    assert body["output"]
    assert _run(url, mint_token(key="wrong" * 8, subject="x", roles=["agent_operator"]))[0] == 401
    # Streaming through the Service: events arrive as the run goes, nothing buffers them to the end.
    events = _stream(url.removesuffix("/run") + "/run/stream", token)
    assert events[0] == "start" and events[-1] == "final" and "delta" in events, events
    base = url.removesuffix("/v1/run")
    with urllib.request.urlopen(f"{base}/.well-known/agent-card.json", timeout=10) as answer:
        assert json.loads(answer.read())["name"] == "hello"
    status_fields = node_cluster.json("agentdeployment", "hello", "-n", namespace)["status"]
    assert status_fields["protocols"] == "openai,a2a,ag-ui"
    assert status_fields["endpoints"]["stream"].endswith("/v1/run/stream")


def test_a_spent_budget_refuses_runs_and_shows_in_the_status_and_an_event(
    node_cluster: NodeCluster, namespace: str
) -> None:
    budgets = {"perAgent": {"tokens": 120}, "warnAtPercent": 50}
    security = {"auth": {"secretRef": {"name": "budgeted-jwt", "key": "key"}}, "budgets": budgets}
    key = apply_agent(node_cluster, namespace, "budgeted", security=security, health={"pollIntervalSeconds": 2})
    _wait_ready(node_cluster, namespace, "budgeted")
    token = mint_token(key=key, subject="e2e-user", roles=["agent_operator"])
    url = f"http://{_service_ip(node_cluster, namespace, 'budgeted')}:8080/v1/run"
    statuses = [_run(url, token)[0] for _ in range(6)]
    allowed = statuses.count(200)
    assert allowed >= 1 and statuses == [200] * allowed + [429] * (6 - allowed), statuses

    def spent() -> dict[str, Any] | None:
        spend = node_cluster.json("agentdeployment", "budgeted", "-n", namespace).get("status", {}).get("spend")
        return spend if spend and spend.get("budgetPercent", 0) >= 100 else None

    spend = eventually(spent, timeout=90, what="status.spend to show the spent budget")
    assert spend["tokens"] >= 120 and spend["resetsAt"].endswith("T00:00:00Z")
    events = node_cluster.json(
        "events",
        "-n",
        namespace,
        "--field-selector",
        "involvedObject.kind=AgentDeployment,involvedObject.name=budgeted",
    )["items"]
    reasons = {event["reason"]: event for event in events}
    assert reasons["BudgetExhausted"]["type"] == "Warning", sorted(reasons)
    assert "refused with 429 budget_exceeded" in reasons["BudgetExhausted"]["message"]
    wide = node_cluster.kube.kubectl("get", "agents", "budgeted", "-n", namespace, "-o", "wide").stdout
    assert "TOKENS" in wide and str(spend["tokens"]) in wide, wide


def test_the_service_answers_from_another_pod(node_cluster: NodeCluster, namespace: str) -> None:
    apply_agent(node_cluster, namespace, "hello")
    _wait_ready(node_cluster, namespace, "hello")
    ip = _service_ip(node_cluster, namespace, "hello")
    operator = node_cluster.json("pods", "-n", deploy.RELEASE, "-l", "app.kubernetes.io/name=agentry")["items"][0]

    done = _exec(
        node_cluster,
        deploy.RELEASE,
        operator["metadata"]["name"],
        f"import urllib.request; print(urllib.request.urlopen('http://{ip}:8080/readyz', timeout=5).status)",
    )

    assert done.returncode == 0 and done.stdout.strip() == "200", done.stderr


def _runtime_host_pid(node_cluster: NodeCluster, pod: dict[str, Any]) -> int:
    container_id = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
    done = subprocess.run(
        node_cluster.cluster.ctr("tasks", "ls"), capture_output=True, text=True, check=True, timeout=30
    )
    for line in done.stdout.splitlines()[1:]:
        task, pid, *_ = line.split()
        if task == container_id:
            return int(pid)
    raise AssertionError(f"no containerd task {container_id}:\n{done.stdout}")


def test_the_health_monitor_replaces_a_pod_that_stops_answering(node_cluster: NodeCluster, namespace: str) -> None:
    apply_agent(node_cluster, namespace, "frozen", health=FAST_HEALTH)
    _wait_ready(node_cluster, namespace, "frozen")
    eventually(
        lambda: (
            node_cluster.json("agentdeployment", "frozen", "-n", namespace).get("status", {}).get("healthyReplicas")
            == 1
        ),
        timeout=60,
        what="the operator to see the pod healthy",
    )
    [pod] = _pods(node_cluster, namespace, "frozen")
    pid = _runtime_host_pid(node_cluster, pod)

    os.kill(pid, signal.SIGSTOP)  # the process stays, answers nothing: only the health poll can tell
    try:
        replaced = eventually(
            lambda: [
                p for p in _pods(node_cluster, namespace, "frozen") if p["metadata"]["uid"] != pod["metadata"]["uid"]
            ],
            timeout=90,
            what="a new pod in place of the frozen one",
        )
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    assert replaced
    _wait_ready(node_cluster, namespace, "frozen")
    events = node_cluster.json(
        "events", "-n", namespace, "--field-selector", "involvedObject.kind=AgentDeployment,involvedObject.name=frozen"
    )["items"]
    assert any(e["reason"] == "PodRestarted" and pod["metadata"]["name"] in e["message"] for e in events), [
        (e["reason"], e["message"]) for e in events
    ]


class Load:
    """One client that calls an agent's Service back to back, bounded in count and time, recording every answer."""

    def __init__(self, url: str, token: str, *, limit: int = 3000, seconds: float = 240.0) -> None:
        self.url, self.token, self.limit, self.seconds = url, token, limit, seconds
        self.answers: list[tuple[int, str | None]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        deadline = time.monotonic() + self.seconds
        while not self._stop.is_set() and len(self.answers) < self.limit and time.monotonic() < deadline:
            request = urllib.request.Request(
                self.url,
                data=json.dumps({"prompt": "What is Agentry?"}).encode(),
                headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    self.answers.append((answer.status, None))
            except urllib.error.HTTPError as error:
                self.answers.append((error.code, error.headers.get("Retry-After")))
            except (urllib.error.URLError, OSError) as error:
                self.errors.append(str(error))


def test_a_rollout_under_load_fails_no_request_and_loses_no_audit_record(
    node_cluster: NodeCluster, namespace: str
) -> None:
    layout = node_cluster.cluster.layout
    with running_postgres(hosts=("127.0.0.1", layout.node_ip), clients=layout.node_subnet) as postgres:
        database = postgres.create_database().rsplit("/", 1)[-1]
        url = f"postgresql://agentry@{layout.node_ip}:{postgres.port}/{database}"
        node_cluster.kube.kubectl("create", "secret", "generic", "db", "-n", namespace, f"--from-literal=url={url}")
        spec = {
            "replicas": 2,
            "services": {"database": {"urlSecretRef": {"name": "db", "key": "url"}}},
            # One client sends back to back: the per-principal limit is not what this test is about.
            "security": {
                "auth": {"secretRef": {"name": "steady-jwt", "key": "key"}},
                "rateLimit": {"requestsPerMinute": 100_000},
            },
        }
        key = apply_agent(node_cluster, namespace, "steady", **spec)
        _wait_ready(node_cluster, namespace, "steady", timeout=180)
        before = {p["metadata"]["uid"] for p in _pods(node_cluster, namespace, "steady")}
        token = mint_token(key=key, subject="e2e-load", roles=["agent_operator"])
        service = f"http://{_service_ip(node_cluster, namespace, 'steady')}:8080/v1/run"

        with Load(service, token) as load:
            eventually(lambda: len(load.answers) >= 20, timeout=60, what="load under way")
            patch = {"spec": {"agent": {"instructions": "You answer questions about Agentry, briefly."}}}
            node_cluster.kube.kubectl(
                "patch", "agentdeployment", "steady", "-n", namespace, "--type=merge", "-p", json.dumps(patch)
            )
            eventually(
                lambda: _rolled_out(node_cluster, namespace, "steady", before),
                timeout=240,
                what="the rollout to replace both pods",
            )
            served = len(load.answers)
            eventually(lambda: len(load.answers) >= served + 20, timeout=60, what="load on the new pods")

        assert not load.errors, load.errors[:5]
        refused = [(s, r) for s, r in load.answers if s != 200]
        assert all(s == 503 and r for s, r in refused), refused[:5]
        ok = sum(1 for s, _ in load.answers if s == 200)
        assert ok >= 40
        # Each replica stores its queued records every flush interval (1 s): the last answers' records land just
        # after them, so the count is awaited (bounded) rather than read once.
        eventually(
            lambda: _count(postgres.url(database), "SELECT count(*) FROM audit_log") >= ok,
            timeout=30,
            what=f"an audit record stored for each of the {ok} answered requests",
            context=lambda: f"stored: {_count(postgres.url(database), 'SELECT count(*) FROM audit_log')}",
            interval=1.0,
        )
        verified = subprocess.run(
            [str(Path(sys.executable).parent / "agentry"), "audit", "verify", "--database-url", postgres.url(database)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr


def _rolled_out(node_cluster: NodeCluster, namespace: str, name: str, before: set[str]) -> bool:
    pods = _pods(node_cluster, namespace, name)
    fresh = [p for p in pods if p["metadata"]["uid"] not in before]
    ready = all(s.get("ready") for p in fresh for s in p["status"].get("containerStatuses", []))
    return len(pods) == 2 and len(fresh) == 2 and ready


def _count(url: str, sql: str) -> int:
    done = subprocess.run(
        [_pg_bin("psql"), "-X", "-At", "-d", url, "-c", sql], capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip())


def _kubelet_status(node_cluster: NodeCluster, *, cert: str | None) -> int:
    layout = node_cluster.cluster.layout
    pki = layout.pki
    context = ssl.create_default_context(cafile=str(pki.cert("ca")))
    if cert is not None:
        context.load_cert_chain(str(pki.cert(cert)), str(pki.key(cert)))
    url = f"https://{layout.node_ip}:{layout.node_ports.kubelet if layout.node_ports else 0}/pods"
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_the_kubelet_authenticates_and_authorizes_every_caller(node_cluster: NodeCluster) -> None:
    assert _kubelet_status(node_cluster, cert=None) == 401, "anonymous callers are refused"
    assert _kubelet_status(node_cluster, cert="scheduler") == 403, "a known identity without the right is refused"
    assert _kubelet_status(node_cluster, cert="apiserver-kubelet-client") == 200
    logs = node_cluster.kube.kubectl("logs", "-n", deploy.RELEASE, f"deploy/{deploy.RELEASE}", "--tail=5")
    assert logs.stdout.strip(), "kubectl logs goes through the API server to the kubelet with its client cert"


@pytest.mark.parametrize("case", ["weak-jwt-key", "entrypoint-not-in-image"])
def test_a_runtime_that_fails_at_start_up_says_why_in_the_agents_status(
    node_cluster: NodeCluster, namespace: str, case: str
) -> None:
    """A Secret value the runtime cannot use, or a code agent whose module the image lacks: one line in Ready."""
    key = "short" if case == "weak-jwt-key" else "k" * 40
    node_cluster.kube.kubectl("create", "secret", "generic", "start-jwt", "-n", namespace, f"--from-literal=key={key}")
    agent: dict[str, Any] = {"model": "test", "instructions": "You answer questions."}
    pod: dict[str, Any] = {}
    expected = "spec.security.auth"
    if case == "entrypoint-not-in-image":
        agent = {"model": "test", "code": {"entrypoint": "support_bot.agent:agent"}}
        pod = {"image": node_cluster.images.runtime.ref, "imagePullPolicy": "Never"}
        expected = "spec.agent.code.entrypoint: support_bot.agent:agent: no module named 'support_bot' in the image"
    manifest = {
        "apiVersion": "agentry.dev/v1alpha1",
        "kind": "AgentDeployment",
        "metadata": {"name": "start", "namespace": namespace},
        "spec": {
            "agent": agent,
            "security": {"auth": {"secretRef": {"name": "start-jwt", "key": "key"}}},
            **({"pod": pod} if pod else {}),
        },
    }
    node_cluster.kube.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(manifest))

    ready = eventually(
        lambda: (
            (c := _condition(node_cluster, namespace, "start", "Ready")).get("reason") == "InvalidRuntimeConfig" and c
        ),
        timeout=120,
        what="the runtime's own reason in Ready",
        context=lambda: node_cluster.kube.kubectl("get", "pods", "-n", namespace, "-o", "wide").stdout,
    )
    assert ready["status"] == "False"
    assert expected in ready["message"] and "(exit 2" in ready["message"], ready["message"]
    assert key not in ready["message"], "the key itself never appears"
    assert _condition(node_cluster, namespace, "start", "Stalled").get("status") == "True"
