"""Make KWOK's pods really serve: run the agent runtime for each Running agent pod, on the pod's loopback IP.

KWOK marks pods Running and gives them 127.x IPs but runs nothing. For development and tests this
runner watches the agents' pods and starts the real `agentry-runtime` bound to each pod's IP with that
pod's configuration (its ConfigMap and the Secret keys its spec references), and stops the process when
the pod goes away. A runtime that dies is not restarted: the pod stays Running with nothing listening,
which is exactly what the operator's health polling must notice and heal.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent_operator.render.labels import AGENT
from agentry_api.v1alpha1 import AgentDeployment
from agentry_api.wiring import CONFIG_KEY, DATA_DIR_ENV, RUNTIME_PORT, SECRETS_DIR_ENV

#: Label every agent pod carries (set by the operator's renderer).
AGENT_LABEL = AGENT  # the operator's own label module: one definition


@dataclass(frozen=True)
class PodPlan:
    """What is needed to run one pod's runtime."""

    uid: str
    namespace: str
    name: str
    ip: str
    port: int
    configmap: str


def pod_plan(pod: dict[str, Any]) -> PodPlan | None:
    """A plan for a Running pod with an IP and a config volume; None for any other pod."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    if status.get("phase") != "Running" or not status.get("podIP") or meta.get("deletionTimestamp"):
        return None
    configmaps = [v["configMap"]["name"] for v in spec.get("volumes", []) if "configMap" in v]
    if not configmaps:
        return None
    ports = [p["containerPort"] for c in spec.get("containers", [])[:1] for p in c.get("ports", [])]
    return PodPlan(
        uid=meta["uid"],
        namespace=meta["namespace"],
        name=meta["name"],
        ip=status["podIP"],
        port=ports[0] if ports else RUNTIME_PORT,
        configmap=configmaps[0],
    )


@dataclass
class Running:
    """A runtime process started for a pod."""

    plan: PodPlan
    process: subprocess.Popen[bytes]
    folder: Path


@dataclass
class PodRunner:
    """Keeps one runtime process per Running agent pod; call `sync()` in a loop."""

    kubectl: Sequence[str]
    workdir: Path
    runtime: Sequence[str] = (sys.executable, "-m", "agent_runtime")
    namespace: str | None = None
    """Only this namespace's pods (None: every namespace)."""
    running: dict[str, Running] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)

    def sync(self) -> None:
        """Start runtimes for new pods, stop those whose pod is gone."""
        scope = ["-n", self.namespace] if self.namespace else ["--all-namespaces"]
        pods = self._get_json("get", "pods", *scope, "-l", AGENT_LABEL)["items"]
        plans = {plan.uid: plan for plan in map(pod_plan, pods) if plan is not None}
        self.finished &= {pod["metadata"]["uid"] for pod in pods}  # forget pods that are gone
        for uid in list(self.running):
            if uid not in plans:
                self._stop(self.running.pop(uid))
                self.finished.add(uid)
        for uid, plan in plans.items():
            if uid not in self.running and uid not in self.finished:
                self._start(plan)

    def stop_all(self) -> None:
        """Stop every runtime (SIGTERM, then SIGKILL after a grace period)."""
        for uid in list(self.running):
            self._stop(self.running.pop(uid))

    def _start(self, plan: PodPlan) -> None:
        folder = self.workdir / plan.namespace / plan.name
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "data").mkdir(parents=True)
        try:
            config = self._write_config(plan, folder)
        except (subprocess.CalledProcessError, KeyError, ValueError) as exc:
            _say(f"{plan.namespace}/{plan.name}: not started: {exc}")
            self.finished.add(plan.uid)  # the operator reports the cause; a new pod gets a new try
            return
        log = (folder / "runtime.log").open("ab")
        env = os.environ | {SECRETS_DIR_ENV: str(folder / "secrets"), DATA_DIR_ENV: str(folder / "data")}
        argv = [*self.runtime, "--config", str(config), "--host", plan.ip, "--port", str(plan.port)]
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        self.running[plan.uid] = Running(plan=plan, process=process, folder=folder)
        _say(f"{plan.namespace}/{plan.name}: runtime pid {process.pid} on {plan.ip}:{plan.port}")

    def _write_config(self, plan: PodPlan, folder: Path) -> Path:
        configmap = self._get_json("get", "configmap", plan.configmap, "-n", plan.namespace)
        text = configmap["data"][CONFIG_KEY]
        agent = AgentDeployment.model_validate(yaml.safe_load(text))
        for _, ref in agent.spec.secret_refs():
            secret = self._get_json("get", "secret", ref.name, "-n", plan.namespace)
            value = base64.b64decode(secret.get("data", {})[ref.key])
            target = folder / "secrets" / ref.name / ref.key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(value)
            target.chmod(0o600)
        path = folder / CONFIG_KEY
        path.write_text(text, encoding="utf-8")
        return path

    def _stop(self, running: Running) -> None:
        process = running.process
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        _say(f"{running.plan.namespace}/{running.plan.name}: runtime stopped (exit {process.returncode})")

    def _get_json(self, *args: str) -> Any:
        result = subprocess.run([*self.kubectl, *args, "-o", "json"], check=True, capture_output=True, timeout=30)
        return json.loads(result.stdout)


def _say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} pod-runner: {message}", file=sys.stderr, flush=True)


def run_forever(runner: PodRunner, *, interval: float = 1.0) -> None:
    """Sync every `interval` seconds until SIGTERM or SIGINT, then stop every runtime."""
    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while not stopping:
            try:
                runner.sync()
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                _say(f"listing pods failed, retrying: {exc}")
            time.sleep(interval)
    finally:
        runner.stop_all()
