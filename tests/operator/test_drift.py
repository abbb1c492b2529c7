"""Telling the operator's own writes from someone else's, and reading a stored AgentDeployment."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from agent_operator.kinds import Applied
from agent_operator.reconcile import AgentState, is_drift, parse_agent
from tests.support.agents import agent


def _state(*applied: Applied) -> AgentState:
    return AgentState(agent=agent(), uid="u-1", applied={item.key: item for item in applied})


def _applied(api_version: str, kind: str, name: str, *, rv: str, generation: int = 0) -> Applied:
    return Applied(key=(api_version, kind, name), resource_version=rv, generation=generation, body={})


def _event(api_version: str, kind: str, name: str, *, rv: str, generation: int | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "resourceVersion": rv}
    if generation is not None:
        meta["generation"] = generation
    return {"apiVersion": api_version, "kind": kind, "metadata": meta}


def test_the_echo_of_our_own_apply_is_not_drift() -> None:
    state = _state(_applied("v1", "ConfigMap", "triage-config", rv="10"))
    assert not is_drift(state, _event("v1", "ConfigMap", "triage-config", rv="10"))


def test_a_new_resource_version_of_a_plain_object_is_drift() -> None:
    state = _state(_applied("v1", "ConfigMap", "triage-config", rv="10"))
    assert is_drift(state, _event("v1", "ConfigMap", "triage-config", rv="11"))


@pytest.mark.parametrize("kind", ["Deployment", "PodDisruptionBudget", "HorizontalPodAutoscaler"])
def test_status_updates_of_objects_with_a_generation_are_not_drift_but_spec_edits_are(kind: str) -> None:
    state = _state(_applied("x/v1", kind, "triage", rv="10", generation=3))
    assert not is_drift(state, _event("x/v1", kind, "triage", rv="17", generation=3))
    assert is_drift(state, _event("x/v1", kind, "triage", rv="18", generation=4))


def test_an_object_the_operator_did_not_apply_in_this_process_is_drift() -> None:
    assert is_drift(_state(), _event("v1", "Service", "triage", rv="5"))


def test_parse_agent_takes_name_namespace_and_spec_and_ignores_the_rest() -> None:
    stored = {
        "apiVersion": "agentry.dev/v1alpha1",
        "kind": "AgentDeployment",
        "metadata": {
            "name": "triage",
            "namespace": "team-a",
            "uid": "u-1",
            "generation": 4,
            "annotations": {"kopf.agentry.dev/last-handled-configuration": "{}"},
        },
        "spec": agent().spec.wire(),
        "status": {"conditions": [], "kopf": {"progress": {}}},
    }
    parsed = parse_agent(stored)
    assert parsed == agent()


def test_parse_agent_refuses_a_spec_the_model_refuses() -> None:
    with pytest.raises(ValidationError):
        parse_agent({"metadata": {"name": "triage", "namespace": "team-a"}, "spec": {"agent": {"model": "x y"}}})
