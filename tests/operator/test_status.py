"""Status from the observed Deployment: kstatus conditions, transition times, changes and their Events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent_operator.checks import Problem
from agent_operator.health.policy import HealthVerdict
from agent_operator.status import (
    NEEDS_PERSON,
    compute_status,
    is_degraded,
    never_reconciled,
    rollout,
    status_changed,
    transitions,
)
from tests.support.agents import agent

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
MISSING = Problem(reason="SecretNotFound", message="in namespace team-a: spec.security.auth.secretRef: ...")


def deployment(
    *,
    desired: int = 2,
    replicas: int = 2,
    updated: int = 2,
    ready: int = 2,
    available: int = 2,
    generation: int = 1,
    observed: int = 1,
    stuck: bool = False,
) -> dict[str, Any]:
    conditions = (
        [
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": "ReplicaSet has timed out progressing.",
            }
        ]
        if stuck
        else []
    )
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": desired},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "conditions": conditions,
        },
    }


def conditions(status: Any) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def compute(
    dep: dict[str, Any] | None,
    *,
    generation: int = 1,
    observed: int = 1,
    problem: Problem | None = None,
    previous: list[dict[str, Any]] | None = None,
    now: datetime = T0,
    health: HealthVerdict | None = None,
) -> Any:
    return compute_status(
        agent(),
        generation=generation,
        observed_generation=observed,
        deployment=dep,
        problem=problem,
        previous=previous or [],
        now=now,
        health=health,
    )


def test_a_rolled_out_deployment_is_ready() -> None:
    status = compute(deployment())
    assert conditions(status) == {
        "Ready": ("True", "Ready"),
        "Progressing": ("False", "Complete"),
        "Degraded": ("False", "AsExpected"),
    }
    assert (status["replicas"], status["readyReplicas"], status["observedGeneration"]) == (2, 2, 1)
    assert status["selector"] == "app.kubernetes.io/instance=triage,app.kubernetes.io/name=agentry-agent"
    assert status["url"] == "http://triage.team-a.svc:8080"
    assert all(c["lastTransitionTime"] == "2026-01-01T12:00:00Z" for c in status["conditions"])


@pytest.mark.parametrize(
    ("dep", "reason"),
    [
        (deployment(generation=2, observed=1), "Reconciling"),
        (deployment(updated=1, replicas=3, available=2), "RollingOut"),
        (deployment(desired=3, replicas=2, updated=2, ready=2, available=2), "RollingOut"),
        (deployment(desired=1, replicas=2, updated=2), "ScalingDown"),
        (deployment(ready=1, available=1), "PodsNotReady"),
        (None, "DeploymentNotFound"),
    ],
)
def test_a_deployment_on_its_way_is_progressing_and_not_ready(dep: dict[str, Any] | None, reason: str) -> None:
    assert conditions(compute(dep)) == {
        "Ready": ("False", reason),
        "Progressing": ("True", reason),
        "Degraded": ("False", "AsExpected"),
    }
    assert not rollout(dep).complete


def test_a_stuck_rollout_is_degraded() -> None:
    status = compute(deployment(ready=0, available=0, stuck=True))
    assert conditions(status) == {
        "Ready": ("False", "ProgressDeadlineExceeded"),
        "Progressing": ("False", "ProgressDeadlineExceeded"),
        "Degraded": ("True", "ProgressDeadlineExceeded"),
        "Stalled": ("True", "ProgressDeadlineExceeded"),
    }
    assert is_degraded(status["conditions"])


def test_a_problem_makes_ready_false_with_its_reason_and_message() -> None:
    status = compute(None, problem=MISSING)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == ("False", "SecretNotFound", MISSING.message)
    assert conditions(status)["Degraded"] == ("True", "SecretNotFound")
    assert status["replicas"] == 0


def test_an_unapplied_generation_is_not_ready_even_when_pods_are() -> None:
    assert conditions(compute(deployment(), generation=3, observed=2))["Ready"] == ("False", "Reconciling")


def test_zero_replicas_is_ready_scaled_to_zero() -> None:
    dep = deployment(desired=0, replicas=0, updated=0, ready=0, available=0)
    assert conditions(compute(dep))["Ready"] == ("True", "ScaledToZero")


def test_transition_time_moves_only_when_the_status_flips() -> None:
    first = compute(deployment(ready=1, available=1))
    same_status_new_reason = compute(deployment(updated=1, replicas=3), previous=first["conditions"], now=T1)
    times = {c["type"]: c["lastTransitionTime"] for c in same_status_new_reason["conditions"]}
    assert times == {
        "Ready": "2026-01-01T12:00:00Z",
        "Progressing": "2026-01-01T12:00:00Z",
        "Degraded": "2026-01-01T12:00:00Z",
    }
    ready = compute(deployment(), previous=first["conditions"], now=T1)
    times = {c["type"]: c["lastTransitionTime"] for c in ready["conditions"]}
    assert times == {
        "Ready": "2026-01-01T12:05:00Z",
        "Progressing": "2026-01-01T12:05:00Z",
        "Degraded": "2026-01-01T12:00:00Z",
    }


def test_other_writers_conditions_are_kept() -> None:
    theirs = {
        "type": "Healthy",
        "status": "True",
        "reason": "AllPodsHealthy",
        "message": "",
        "lastTransitionTime": "2025-12-31T00:00:00Z",
    }
    status = compute(deployment(), previous=[theirs])
    assert theirs in status["conditions"]


def test_status_is_unchanged_when_nothing_moved() -> None:
    first = compute(deployment())
    again = compute(deployment(), previous=first["conditions"], now=T1)
    assert not status_changed(dict(first), again)
    assert status_changed(None, again)
    assert status_changed({**first, "healthyReplicas": 2, "readyReplicas": 1}, again)
    assert not status_changed({**first, "healthyReplicas": 2}, again)


URL = "http://triage.team-a.svc:8080"


def _served(
    protocols: list[str], *, generation: int = 1, observed: int = 1, problem: Problem | None = None, served: Any = None
) -> Any:
    return compute_status(
        agent(protocols=protocols),
        generation=generation,
        observed_generation=observed,
        deployment=deployment(),
        problem=problem,
        previous=[],
        now=T0,
        served=served,
    )


def test_protocols_and_endpoints_follow_the_spec_with_none_for_what_is_not_served() -> None:
    status = _served(["openai", "a2a", "ag-ui"])
    assert status["protocols"] == "openai,a2a,ag-ui"
    assert status["endpoints"]["a2a"] == f"{URL}/.well-known/agent.json"
    narrowed = _served(["openai"])
    assert narrowed["protocols"] == "openai"
    assert narrowed["endpoints"] == {
        "run": f"{URL}/v1/run",
        "stream": f"{URL}/v1/run/stream",
        "openai": f"{URL}/v1",
        "a2a": None,  # None in a merge patch deletes the key the previous status had
        "agUI": None,
    }


@pytest.mark.parametrize(
    ("observed", "problem"), [(2, MISSING), (1, None)], ids=["a problem stops it", "not reconciled yet"]
)
def test_an_unapplied_generation_keeps_what_the_pods_still_serve(observed: int, problem: Problem | None) -> None:
    before = _served(["openai", "a2a"])
    blocked = _served([], generation=2, observed=observed, problem=problem, served=before)
    assert (blocked["protocols"], blocked["endpoints"]) == (before["protocols"], before["endpoints"])
    applied = _served([], generation=2, observed=2, served=before)
    assert (applied["protocols"], applied["endpoints"]["a2a"]) == ("", None)


def test_with_nothing_served_before_the_status_names_the_specs_protocols_like_its_url() -> None:
    first = _served(["a2a"], generation=1, observed=1, problem=MISSING, served={"observedGeneration": 0})
    assert first["protocols"] == "a2a"


def test_an_endpoint_a_merge_patch_deleted_is_no_change() -> None:
    new = _served(["openai"])
    stored = {**new, "endpoints": {key: url for key, url in new["endpoints"].items() if url is not None}}
    assert not status_changed(stored, new)
    assert status_changed({**stored, "endpoints": {**stored["endpoints"], "a2a": "http://old"}}, new)


def test_each_change_of_state_is_one_transition_and_progress_is_none() -> None:
    progressing = compute(deployment(ready=0, available=0))
    assert transitions([], progressing["conditions"]) == []
    rolling = compute(deployment(updated=1, replicas=3), previous=progressing["conditions"])
    assert transitions(progressing["conditions"], rolling["conditions"]) == []
    ready = compute(deployment(), previous=rolling["conditions"])
    assert [(t.type, t.status, t.reason) for t in transitions(rolling["conditions"], ready["conditions"])] == [
        ("Ready", "True", "Ready")
    ]
    assert transitions(ready["conditions"], compute(deployment(), previous=ready["conditions"])["conditions"]) == []
    again = compute(deployment(generation=2, observed=1), previous=ready["conditions"])
    assert [(t.type, t.status, t.reason) for t in transitions(ready["conditions"], again["conditions"])] == [
        ("Ready", "False", "Reconciling")
    ]


def test_a_problem_from_the_start_and_a_new_problem_are_events() -> None:
    missing = compute(None, problem=MISSING)
    assert [(t.type, t.reason) for t in transitions([], missing["conditions"])] == [("Ready", "SecretNotFound")]
    schema = Problem(reason="InvalidOutputSchema", message="spec.agent.outputSchema: ...")
    other = compute(None, problem=schema, previous=missing["conditions"])
    assert [(t.type, t.reason) for t in transitions(missing["conditions"], other["conditions"])] == [
        ("Ready", "InvalidOutputSchema")
    ]


def test_a_problem_is_one_event_and_its_end_another() -> None:
    ready = compute(deployment())
    broken = compute(deployment(), problem=MISSING, previous=ready["conditions"])
    assert [(t.type, t.reason) for t in transitions(ready["conditions"], broken["conditions"])] == [
        ("Ready", "SecretNotFound")
    ]
    healed = compute(deployment(), previous=broken["conditions"])
    assert [(t.type, t.status, t.reason) for t in transitions(broken["conditions"], healed["conditions"])] == [
        ("Ready", "True", "Ready"),
        ("Degraded", "False", "AsExpected"),
    ]


# --- Stalled: what kstatus reads as Failed -------------------------------------------------------


def test_the_reasons_that_need_a_person_are_one_set() -> None:
    assert {
        "SecretNotFound",
        "InvalidOutputSchema",
        "UnknownModelProvider",
        "ResourceConflict",
        "RestartBudgetExhausted",
    } <= NEEDS_PERSON
    assert not {"ApplyFailed", "PodsUnhealthy", "PodsDegraded", "RollingOut", "Reconciling"} & NEEDS_PERSON


@pytest.mark.parametrize(
    "reason", ["SecretNotFound", "InvalidOutputSchema", "UnknownModelProvider", "ResourceConflict"]
)
def test_a_problem_that_needs_a_person_is_stalled_with_its_reason_and_message(reason: str) -> None:
    problem = Problem(reason=reason, message=f"spec.x: {reason}")
    stalled = next(c for c in compute(None, problem=problem)["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"], stalled["message"]) == ("True", reason, problem.message)
    assert stalled["observedGeneration"] == 1


def test_a_transient_problem_is_not_stalled() -> None:
    status = compute(None, problem=Problem(reason="ApplyFailed", message="Deployment team-a/triage: timeout"))
    assert conditions(status)["Degraded"] == ("True", "ApplyFailed")
    assert "Stalled" not in conditions(status)


def test_an_exhausted_restart_budget_is_stalled_and_unwell_pods_are_not() -> None:
    exhausted = HealthVerdict(True, "RestartBudgetExhausted", "3 restarts in the last hour")
    status = compute(deployment(), health=exhausted)
    assert conditions(status)["Stalled"] == ("True", "RestartBudgetExhausted")
    assert conditions(status)["Ready"] == ("True", "Ready")
    unwell = compute(deployment(), health=HealthVerdict(True, "PodsUnhealthy", "triage-1: unreachable"))
    assert conditions(unwell)["Degraded"] == ("True", "PodsUnhealthy")
    assert "Stalled" not in conditions(unwell)


def test_stalled_goes_away_with_the_problem() -> None:
    broken = compute(deployment(), problem=MISSING)
    healed = compute(deployment(), previous=broken["conditions"], now=T1)
    assert set(conditions(healed)) == {"Ready", "Progressing", "Degraded"}
    assert conditions(healed)["Ready"] == ("True", "Ready")
    assert status_changed(dict(broken), healed)


def test_stalled_keeps_its_transition_time_while_the_problem_lasts() -> None:
    first = compute(None, problem=MISSING)
    again = compute(None, problem=MISSING, previous=first["conditions"], now=T1)
    stalled = next(c for c in again["conditions"] if c["type"] == "Stalled")
    assert stalled["lastTransitionTime"] == "2026-01-01T12:00:00Z"
    assert not status_changed(dict(first), again)


def test_a_stalled_agent_posts_no_extra_event() -> None:
    missing = compute(None, problem=MISSING)
    assert [(t.type, t.reason) for t in transitions([], missing["conditions"])] == [("Ready", "SecretNotFound")]


@pytest.mark.parametrize(
    ("status", "never"),
    [
        (None, True),
        ({"observedGeneration": 0, "replicas": 0, "selector": "", "url": ""}, True),  # the CRD's defaults only
        ({"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "False"}]}, False),
    ],
)
def test_a_status_of_defaults_only_was_never_reconciled(status: dict[str, Any] | None, never: bool) -> None:
    assert never_reconciled(status) is never


# --- a runtime that fails to start -----------------------------------------------------------------

BAD_CONFIG = HealthVerdict(
    True,
    "InvalidRuntimeConfig",
    "pod triage-7d9-x: invalid configuration in /etc/agentry/agent.yaml: spec.replicas: ... (exit 2, restarts 3)",
    story="InvalidRuntimeConfig: invalid configuration in /etc/agentry/agent.yaml: spec.replicas: ...",
)
DEPENDENCY_DOWN = HealthVerdict(
    True, "RuntimeFailed", "pod triage-x: start-up failed: cannot reach PostgreSQL (exit 3, restarts 1)"
)


def test_a_failed_start_is_the_ready_reason_with_the_runtimes_line() -> None:
    status = compute(deployment(available=1, ready=1), health=BAD_CONFIG)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == ("False", "InvalidRuntimeConfig", BAD_CONFIG.message)
    assert conditions(status)["Degraded"] == ("True", "InvalidRuntimeConfig")
    assert conditions(status)["Progressing"] == ("True", "PodsNotReady"), "the rollout's count stays in Progressing"


def test_a_bad_runtime_config_needs_a_person_and_a_dependency_down_does_not() -> None:
    assert conditions(compute(deployment(available=1), health=BAD_CONFIG))["Stalled"] == (
        "True",
        "InvalidRuntimeConfig",
    )
    transient = compute(deployment(available=1), health=DEPENDENCY_DOWN)
    assert conditions(transient)["Ready"] == ("False", "RuntimeFailed")
    assert "Stalled" not in conditions(transient)


def test_a_failed_start_leaves_a_problem_an_unapplied_generation_and_a_ready_agent_alone() -> None:
    assert conditions(compute(None, problem=MISSING, health=BAD_CONFIG))["Ready"] == ("False", "SecretNotFound")
    assert conditions(compute(deployment(), generation=2, health=BAD_CONFIG))["Ready"] == ("False", "Reconciling")
    assert conditions(compute(deployment(), health=DEPENDENCY_DOWN))["Ready"] == ("True", "Ready")


def test_a_failed_start_is_announced_by_the_monitor_not_again_by_the_status() -> None:
    before = compute(deployment(available=1), health=HealthVerdict(False, "AsExpected", ""))
    failed = compute(deployment(available=1), previous=before["conditions"], health=BAD_CONFIG, now=T1)
    assert transitions(before["conditions"], failed["conditions"]) == []
    healed = compute(deployment(), previous=failed["conditions"], now=T1)
    assert [(t.type, t.status) for t in transitions(failed["conditions"], healed["conditions"])] == [
        ("Ready", "True"),
        ("Degraded", "False"),
    ]
