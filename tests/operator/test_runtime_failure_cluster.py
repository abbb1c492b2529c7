"""A runtime that fails to start, on the real API server: its one line reaches the agent's Ready condition.

KWOK runs no container, so the test writes the pod's status through the status subresource as the kubelet
would after the runtime exited 2 with its line in the termination message. KWOK leaves a Running pod's status
alone (its pod-ready stage selects Pending pods only), so what the operator reads is what the test wrote.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.operator.pods import LINE, crash_looping

from .running import Agents

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

FAST_HEALTH = {"pollIntervalSeconds": 2, "startupGraceSeconds": 0}


def _crash(agents: Agents, pod: str, *, restarts: int) -> None:
    """What the kubelet writes while the runtime waits in CrashLoopBackOff after exiting with its line."""
    status = {
        **crash_looping(restarts=restarts),
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
            {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady"},
        ],
    }
    agents.kubectl("patch", "pod", pod, "--subresource=status", "--type=merge", "-p", json.dumps({"status": status}))


def _warnings(agents: Agents) -> list[dict[str, Any]]:
    return [e for e in agents.events("triage") if e["reason"] == "InvalidRuntimeConfig"]


def test_a_failed_start_is_the_agents_ready_reason_with_the_runtimes_line(agents: Agents) -> None:
    agents.secret("jwt", key="k" * 32)
    agents.apply("triage", health=FAST_HEALTH)
    agents.ready("triage")
    pod = agents.items("pods")[0]["metadata"]["name"]

    _crash(agents, pod, restarts=1)

    def ready_says(restarts: int) -> dict[str, Any] | None:
        ready = agents.condition("triage")
        expected = f"pod {pod}: {LINE} (exit 2, restarts {restarts})"
        return ready if ready and ready["message"] == expected else None

    ready = agents.until(lambda: ready_says(1), what="the runtime's line in Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidRuntimeConfig")
    stalled = agents.condition("triage", "Stalled")
    assert stalled is not None and (stalled["status"], stalled["reason"]) == ("True", "InvalidRuntimeConfig")
    wide = agents.kubectl("get", "agents", "triage", "-o", "wide")
    assert "InvalidRuntimeConfig" in wide.splitlines()[1]
    assert agents.kubectl("get", "pod", pod, "-o", "jsonpath={.status.phase}") == "Running", "KWOK left it alone"

    _crash(agents, pod, restarts=2)
    agents.until(lambda: ready_says(2), what="the new restart count in Ready")
    warnings = agents.until(lambda: _warnings(agents), what="the Warning Event")
    assert [(e["type"], e["message"]) for e in warnings] == [("Warning", f"pod {pod}: {LINE} (exit 2, restarts 1)")]
    assert warnings[0].get("count", 1) == 1, "one Event per distinct line, not per restart or poll"
