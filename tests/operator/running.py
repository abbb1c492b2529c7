"""The real operator as a child process (`agentry-operator`), and kubectl driving it as a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from agentry_dev.cluster.network import free_ports
from tests.kube import KubeCluster, eventually
from tests.support.agents import manifest

SELECTOR = "app.kubernetes.io/managed-by=agentry"
T = TypeVar("T")

#: Fast retries, so a test sees recovery within seconds; everything else as in production.
TEST_SETTINGS = {
    "AGENTRY_LOG_FORMAT": "text",
    "AGENTRY_RETRY_BASE_SECONDS": "0.5",
    "AGENTRY_RETRY_MAX_SECONDS": "2",
}


@dataclass
class OperatorProcess:
    """Start, stop and kill one operator process; its log is kept in `log` for failure messages."""

    kubeconfig: Path
    namespaces: tuple[str, ...]
    log: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    metrics_port: int = 0

    def start(self, *, timeout: float = 30.0) -> None:
        """Start and wait until kopf's liveness endpoint answers (the operator is watching by then)."""
        self.port, self.metrics_port = free_ports(2)
        env = {
            **os.environ,
            **TEST_SETTINGS,
            **self.extra_env,
            "KUBECONFIG": str(self.kubeconfig),
            "AGENTRY_NAMESPACES": ",".join(self.namespaces),
            "AGENTRY_LIVENESS_ENDPOINT": f"http://127.0.0.1:{self.port}/healthz",
            "AGENTRY_METRICS_ENDPOINT": f"http://127.0.0.1:{self.metrics_port}/metrics",
        }
        binary = Path(sys.executable).parent / "agentry-operator"
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(binary)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while not self._alive():
            if self.process.poll() is not None:
                raise AssertionError(f"the operator exited with {self.process.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the operator did not come up within {timeout} s:\n{self.tail()}")
            time.sleep(0.2)

    def _alive(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, *, kill: bool = False, timeout: float = 20.0) -> int:
        """SIGTERM (graceful) or SIGKILL (a crash), and wait; returns the exit code."""
        if self.process is None:
            return 0
        process, self.process = self.process, None
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return process.returncode

    def rss_bytes(self) -> int:
        """Resident memory of the running operator process."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS in /proc status")

    def tail(self, lines: int = 60) -> str:
        """The end of the operator's log."""
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class Agents:
    """kubectl as a user drives it, in one namespace, with failures that show the operator's log."""

    def __init__(self, cluster: KubeCluster, namespace: str, operator: OperatorProcess) -> None:
        self.cluster, self.namespace, self.operator = cluster, namespace, operator

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return self.cluster.kubectl(*args, "-n", self.namespace, stdin=stdin).stdout

    def apply(self, name: str, **spec: Any) -> None:
        self.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(manifest(name, self.namespace, **spec)))

    def secret(self, name: str, **data: str) -> None:
        self.kubectl("create", "secret", "generic", name, *(f"--from-literal={k}={v}" for k, v in data.items()))

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        answer = self.cluster.kubectl("get", kind, name, "-n", self.namespace, "-o", "json", check=False)
        return json.loads(answer.stdout) if answer.returncode == 0 else None

    def items(self, kinds: str, selector: str = SELECTOR) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(self.kubectl("get", kinds, "-l", selector, "-o", "json"))["items"]
        return items

    def until(self, probe: Callable[[], T | None], *, what: str, timeout: float = 60.0) -> T:
        return eventually(
            probe,
            what=what,
            timeout=timeout,
            interval=0.25,
            context=lambda: f"--- operator log ---\n{self.operator.tail()}",
        )

    def condition(self, name: str, kind: str = "Ready") -> dict[str, Any] | None:
        body = self.get("agentdeployment", name) or {}
        conditions = (body.get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == kind), None)

    def ready(self, name: str, *, generation: int | None = None) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            body = self.get("agentdeployment", name) or {}
            status = body.get("status") or {}
            condition = self.condition(name)
            current = status.get("observedGeneration") == (generation or body["metadata"]["generation"])
            return body if condition and condition["status"] == "True" and current else None

        return self.until(probe, what=f"{name} to be Ready")

    def events(self, name: str) -> list[dict[str, Any]]:
        answer = self.kubectl(
            "get",
            "events",
            "--field-selector",
            f"involvedObject.kind=AgentDeployment,involvedObject.name={name}",
            "-o",
            "json",
        )
        items: list[dict[str, Any]] = json.loads(answer)["items"]
        return items
