"""kubectl driving the real operator as a user would (the process itself: tests/support/operator.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import yaml

from tests.kube import KubeCluster, eventually
from tests.support.agents import manifest
from tests.support.operator import OperatorProcess

SELECTOR = "app.kubernetes.io/managed-by=agentry"
T = TypeVar("T")


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
