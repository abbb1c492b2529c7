"""kstatus (the Go library Flux uses) and the Argo CD health check give the same verdict on each agent state.

The objects are what the API server would serve: the CRD's defaults applied (as `agentry validate` applies
them) and a status from the operator's own status computation. The same agreement on objects read from a
real API server is in test_kstatus_cluster.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agent_operator.checks import Problem
from agent_operator.health.policy import HealthVerdict
from agentry_api.crdgen import openapi_schema
from agentry_api.validate import apply_defaults
from tests.operator.test_status import compute, deployment
from tests.support.agents import manifest

from .argocd import argocd_health
from .kstatus import ARGO_HEALTH, Kstatus

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def served(*, generation: int = 1, status: Any = None, deleting: bool = False) -> dict[str, Any]:
    """An AgentDeployment as a GET returns it: the CRD's defaults filled in, then the operator's status."""
    body = manifest("triage", "team-a")
    body["metadata"]["generation"] = generation
    if deleting:
        body["metadata"]["deletionTimestamp"] = "2026-01-01T12:00:00Z"
    if status is not None:
        body["status"] = dict(status)
    defaulted: dict[str, Any] = apply_defaults(body, openapi_schema())
    return defaulted


def reconciled(
    dep: dict[str, Any] | None = None,
    *,
    generation: int = 1,
    observed: int = 1,
    problem: Problem | None = None,
    health: HealthVerdict | None = None,
    previous: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    status = compute(
        dep, generation=generation, observed=observed, problem=problem, previous=previous, now=T0, health=health
    )
    return served(generation=generation, status=status)


def needs(reason: str) -> Problem:
    return Problem(reason=reason, message=f"spec.x: a person must fix {reason}")


STALLED_THEN_FIXED = reconciled(deployment(), problem=needs("SecretNotFound"))["status"]["conditions"]

CASES = {
    "new, never reconciled": (served(), "InProgress"),
    "spec changed, not seen yet": (served(generation=2, status=reconciled(deployment())["status"]), "InProgress"),
    "generation seen, not applied": (reconciled(deployment(), generation=2, observed=1), "InProgress"),
    "rolling out": (reconciled(deployment(updated=1, replicas=3)), "InProgress"),
    "pods not ready": (reconciled(deployment(ready=0, available=0)), "InProgress"),
    "no Deployment yet": (reconciled(None), "InProgress"),
    "ready": (reconciled(deployment()), "Current"),
    "scaled to zero": (reconciled(deployment(desired=0, replicas=0, updated=0, ready=0, available=0)), "Current"),
    "Secret missing": (reconciled(None, problem=needs("SecretNotFound")), "Failed"),
    "bad output schema": (reconciled(None, problem=needs("InvalidOutputSchema")), "Failed"),
    "unknown provider": (reconciled(None, problem=needs("UnknownModelProvider")), "Failed"),
    "name taken": (reconciled(None, problem=needs("ResourceConflict")), "Failed"),
    "apply failed (retried)": (reconciled(None, problem=needs("ApplyFailed")), "InProgress"),
    "rollout past its deadline": (reconciled(deployment(ready=0, available=0, stuck=True)), "Failed"),
    "restart budget exhausted": (
        reconciled(deployment(), health=HealthVerdict(True, "RestartBudgetExhausted", "3 restarts in 1 h")),
        "Failed",
    ),
    "pods unwell, being restarted": (
        reconciled(deployment(), health=HealthVerdict(True, "PodsUnhealthy", "triage-1: unreachable")),
        "Current",
    ),
    "Secret created again": (reconciled(deployment(), previous=STALLED_THEN_FIXED), "Current"),
    "being deleted": (served(status=reconciled(deployment())["status"], deleting=True), "Terminating"),
}


@pytest.mark.parametrize(("obj", "expected"), CASES.values(), ids=CASES.keys())
def test_kstatus_and_argocd_agree(kstatus: Kstatus, obj: dict[str, Any], expected: str) -> None:
    verdict = kstatus.one(obj)
    assert verdict.status == expected, verdict.message
    health, message = argocd_health(obj)
    assert health == ARGO_HEALTH[expected], message
    assert message


def test_a_new_agent_has_the_crd_default_observed_generation() -> None:
    assert served()["status"]["observedGeneration"] == 0


def test_a_stalled_agents_messages_name_the_problem(kstatus: Kstatus) -> None:
    obj = reconciled(None, problem=needs("SecretNotFound"))
    assert kstatus.one(obj).message == "spec.x: a person must fix SecretNotFound"
    assert argocd_health(obj) == ("Degraded", "SecretNotFound: spec.x: a person must fix SecretNotFound")


def test_argocd_shows_the_health_monitors_message_on_a_ready_agent() -> None:
    obj = CASES["pods unwell, being restarted"][0]
    assert argocd_health(obj) == (
        "Healthy",
        "Ready: 2 of 2 pods available; Degraded PodsUnhealthy: triage-1: unreachable",
    )
