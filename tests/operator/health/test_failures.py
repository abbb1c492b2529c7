"""A runtime's failed start, read from the pod's container status as the kubelet writes it, and the verdict."""

from __future__ import annotations

from typing import Any

import pytest

from agent_operator.health.failures import (
    INVALID_RUNTIME_CONFIG,
    MAX_LINE,
    RUNTIME_FAILED,
    ContainerFailure,
    container_failure,
)
from agent_operator.health.policy import PodView, runtime_failure
from tests.operator.pods import LINE, crash_looping


def test_a_crash_looping_container_gives_its_line_exit_code_and_restarts() -> None:
    failure = container_failure(crash_looping())
    assert failure == ContainerFailure(
        container="runtime", line=LINE, exit_code=2, restarts=3, finished_at=1767225610.0
    )
    assert failure.reason == INVALID_RUNTIME_CONFIG


def test_a_container_that_just_exited_non_zero_is_failing_too() -> None:
    status = crash_looping(exit_code=3)
    container = status["containerStatuses"][0]
    container["state"] = {"terminated": container.pop("lastState")["terminated"]}
    failure = container_failure(status)
    assert failure is not None
    assert (failure.exit_code, failure.reason) == (3, RUNTIME_FAILED)


@pytest.mark.parametrize(
    "state",
    [
        {"running": {"startedAt": "2026-01-01T00:00:20Z"}},  # back up after the dependency came
        {"waiting": {"reason": "ContainerCreating"}},
        {"terminated": {"exitCode": 0, "reason": "Completed"}},
    ],
    ids=["running-again", "creating", "exited-zero"],
)
def test_a_container_not_in_a_failed_start_is_no_failure(state: dict[str, Any]) -> None:
    status = crash_looping()
    status["containerStatuses"][0]["state"] = state
    assert container_failure(status) is None


def test_a_pod_without_container_statuses_is_no_failure() -> None:
    assert container_failure({"phase": "Pending"}) is None


@pytest.mark.parametrize(
    ("message", "line"),
    [
        ("Traceback (most recent call last):\n  File x\nModuleNotFoundError: No module named 'y'\n\n", None),
        ("", "exited: Error"),
        ("a\tb   c", "a b c"),
        ("x" * 5000, "x" * (MAX_LINE - 3) + "..."),
    ],
    ids=["log-tail-last-line", "no-message-the-kubelets-reason", "whitespace", "cut"],
)
def test_the_message_is_one_line(message: str, line: str | None) -> None:
    failure = container_failure(crash_looping(message=message))
    assert failure is not None
    assert failure.line == (line or "ModuleNotFoundError: No module named 'y'")


def pod(name: str, started: float, status: dict[str, Any] | None, *, terminating: bool = False) -> PodView:
    return PodView(
        name=name,
        started_at=started,
        ready=False,
        terminating=terminating,
        failure=container_failure(status) if status else None,
    )


def test_the_verdict_names_the_newest_failing_pod_its_line_exit_and_restarts() -> None:
    pods = [
        pod("triage-old", 100.0, crash_looping(message="old line", exit_code=3)),
        pod("triage-new", 200.0, crash_looping(restarts=4)),
        pod("triage-fine", 300.0, None),
        pod("triage-going", 400.0, crash_looping(message="going"), terminating=True),
    ]
    verdict = runtime_failure(pods)
    assert verdict is not None
    assert (verdict.degraded, verdict.reason) == (True, INVALID_RUNTIME_CONFIG)
    assert verdict.message == f"pod triage-new: {LINE} (exit 2, restarts 4)"


def test_no_failing_pod_is_no_verdict() -> None:
    assert runtime_failure([pod("a", 1.0, None)]) is None
    assert runtime_failure([]) is None


def test_another_restart_with_the_same_line_is_the_same_story() -> None:
    first = runtime_failure([pod("a", 1.0, crash_looping(restarts=1))])
    again = runtime_failure([pod("a", 1.0, crash_looping(restarts=2))])
    other = runtime_failure([pod("a", 1.0, crash_looping(message="spec.x: wrong", restarts=3))])
    assert first is not None and again is not None and other is not None
    assert first != again, "the restart count moves the condition's message"
    assert first.event_key == again.event_key != other.event_key
