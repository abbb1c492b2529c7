"""The reconciler over the fake API: apply order, pruning, conflicts, status writes, Events and retries, fast.

The model is CloudNativePG's controller tests: the reconcile logic runs against an in-memory API and the test
asserts on what it wrote. tests/operator/test_reconcile.py runs the same behaviour on a real API server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from agent_operator.checks import RESOURCE_CONFLICT, SECRET_NOT_FOUND
from agent_operator.config import OperatorConfig
from agent_operator.health.policy import HealthVerdict, runtime_failure
from agent_operator.health.supervisor import pod_info
from agent_operator.kinds import CHILD_KINDS
from agent_operator.reconcile import RECONCILE_ERROR, Reconciler
from agent_operator.render import render_children
from agent_operator.render.labels import AGENT, MANAGED_BY, MANAGED_BY_VALUE
from agentry_api import v1alpha1 as api
from tests.support.agents import agent

from .fakeapi import FakeApi
from .pods import LINE, crash_looping

NAMESPACE = "team-a"
CONFIG = OperatorConfig(retry_base_seconds=2, retry_max_seconds=10, resync_seconds=300)
LABELS = {MANAGED_BY: MANAGED_BY_VALUE, AGENT: "triage"}


class Clock:
    """Monotonic time the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class World:
    """The fake API with one agent in it, its Secret, and a reconciler over them."""

    def __init__(self, *, config: OperatorConfig = CONFIG) -> None:
        self.api = FakeApi()
        self.clock = Clock()
        self.outcomes: list[str | None] = []
        self.api.secrets[(NAMESPACE, "jwt")] = {"key"}
        self.reconciler = self.new_reconciler(config)

    def new_reconciler(self, config: OperatorConfig = CONFIG) -> Reconciler:
        """A fresh reconciler (an operator restart): it remembers nothing."""
        return Reconciler(
            kube=self.api,
            config=config,
            now=lambda: datetime(2026, 1, 1, tzinfo=UTC),
            monotonic=self.clock,
            outcomes=self.outcomes.append,
        )

    def agent(self, **spec: Any) -> dict[str, Any]:
        return self.api.put_agent(agent("triage", NAMESPACE, **spec))

    async def reconcile(self) -> Any:
        return await self.reconciler.reconcile_named(namespace=NAMESPACE, name="triage")

    def reasons(self) -> list[str]:
        return [event.reason for event in self.api.events]

    def owned(self, kind: str) -> list[str]:
        uid = self.api.get(api.API_VERSION, api.KIND, NAMESPACE, "triage")["metadata"]["uid"]  # type: ignore[index]
        return [
            key[3]
            for key, body in self.api.objects.items()
            if key[1] == kind and any(ref["uid"] == uid for ref in body["metadata"].get("ownerReferences", []))
        ]


@pytest.fixture
def world() -> World:
    return World()


def test_every_rendered_kind_has_its_row_in_the_table() -> None:
    rendered = {
        (child["apiVersion"], child["kind"])
        for spec in (
            {},
            {"replicas": 3},
            {"autoscaling": {"enabled": True, "provider": "HPA", "maxReplicas": 3, "targetCPUUtilizationPercent": 60}},
        )
        for config in (CONFIG, OperatorConfig(network_policy=True))
        for child in render_children(agent(**spec), config)
    }
    assert rendered == {child.key for child in CHILD_KINDS}


# --- apply -------------------------------------------------------------------------------------


async def test_what_the_pods_mount_is_applied_before_the_deployment(world: World) -> None:
    world.agent(replicas=2)
    world.api.latency = {"ConfigMap": 0.05, "ServiceAccount": 0.02}  # slow ones must still come first

    assert await world.reconcile() is None

    applied = [kind for verb, kind, _ in world.api.writes if verb == "apply"]
    assert sorted(applied) == sorted(["ServiceAccount", "ConfigMap", "Service", "Deployment", "PodDisruptionBudget"])
    deployment = applied.index("Deployment")
    assert all(applied.index(kind) < deployment for kind in ("ServiceAccount", "ConfigMap", "Service"))
    assert world.owned("Deployment") == ["triage"] and world.owned("ConfigMap") == ["triage-config"]


async def test_a_refused_apply_becomes_apply_failed_with_the_servers_reason(world: World) -> None:
    world.agent()
    world.api.refuse[("Service", "triage")] = "spec.ports[0].port: Invalid value"

    problem = await world.reconcile()

    assert problem is not None and problem.reason == "ApplyFailed"
    assert "Service team-a/triage: spec.ports[0].port: Invalid value" in problem.message
    assert world.api.statuses[-1]["conditions"][0]["reason"] == "ApplyFailed"


# --- pruning -----------------------------------------------------------------------------------


async def test_an_optional_child_no_longer_rendered_is_pruned_with_an_event(world: World) -> None:
    world.agent(replicas=2)
    await world.reconcile()
    assert world.owned("PodDisruptionBudget") == ["triage"]

    world.agent(replicas=1)
    await world.reconcile()

    assert world.owned("PodDisruptionBudget") == []
    assert ("delete", "PodDisruptionBudget", "triage") in world.api.writes
    deleted = [e for e in world.api.events if e.reason == "Deleted"]
    assert [(e.type, e.message) for e in deleted] == [("Normal", "deleted PodDisruptionBudget triage")]


async def test_a_restarted_reconciler_prunes_what_an_earlier_one_left(world: World) -> None:
    world.agent(replicas=2)
    await world.reconcile()
    world.agent(replicas=1)
    world.reconciler = world.new_reconciler()  # restarted after the spec changed: it never saw the PDB

    await world.reconcile()

    assert world.owned("PodDisruptionBudget") == []


async def test_pruning_leaves_objects_that_are_not_the_agents(world: World) -> None:
    world.agent(replicas=2)
    await world.reconcile()
    foreign = {"kind": "Deployment", "name": "web", "uid": "web-uid", "controller": True}
    world.api.put(_pdb("controlled-by-web", labels=LABELS, owners=[foreign]))
    world.api.put(_pdb("another-agents", labels={**LABELS, AGENT: "other"}))
    world.api.put(_pdb("unlabelled", labels={}))
    world.agent(replicas=1)

    await world.reconcile()

    left = {key[3] for key in world.api.objects if key[1] == "PodDisruptionBudget"}
    assert left == {"controlled-by-web", "another-agents", "unlabelled"}


async def test_the_first_reconcile_of_a_new_agent_lists_nothing_to_prune(world: World) -> None:
    world.agent()
    world.api.broken.add("delete_stale")  # would raise if it were called

    assert await world.reconcile() is None


# --- conflicts ---------------------------------------------------------------------------------


async def test_a_foreign_object_under_a_childs_name_stops_every_apply(world: World) -> None:
    world.agent()
    world.api.put(_configmap("triage-config", labels={}, data={"password-policy": "theirs"}))

    problem = await world.reconcile()

    assert problem is not None and problem.reason == RESOURCE_CONFLICT
    assert "ConfigMap team-a/triage-config already exists and is not managed by Agentry" in problem.message
    assert world.api.writes == []
    theirs = world.api.get("v1", "ConfigMap", NAMESPACE, "triage-config")
    assert theirs is not None and theirs["data"] == {"password-policy": "theirs"}
    conditions = {c["type"]: c for c in world.api.statuses[-1]["conditions"]}
    assert conditions["Stalled"]["reason"] == RESOURCE_CONFLICT
    assert [e.type for e in world.api.events if e.reason == RESOURCE_CONFLICT] == ["Warning"]


async def test_an_orphan_with_the_agents_labels_is_adopted(world: World) -> None:
    world.agent()
    orphan = world.api.put(_configmap("triage-config", labels=LABELS, data={"agent.yaml": "stale"}))

    assert await world.reconcile() is None

    adopted = world.api.get("v1", "ConfigMap", NAMESPACE, "triage-config")
    assert adopted is not None and adopted["metadata"]["uid"] == orphan["metadata"]["uid"]
    assert world.owned("ConfigMap") == ["triage-config"]
    assert adopted["data"]["agent.yaml"] != "stale"


# --- status and Events -------------------------------------------------------------------------


async def test_status_is_written_only_when_it_changed(world: World) -> None:
    world.agent()
    await world.reconcile()
    assert len(world.api.statuses) == 1
    assert world.api.statuses[0]["conditions"][0]["status"] == "False"  # the Deployment has not rolled out

    await world.reconcile()
    assert len(world.api.statuses) == 1

    world.api.roll_out(NAMESPACE, "triage")
    await world.reconcile()
    assert len(world.api.statuses) == 2
    assert world.api.statuses[1]["conditions"][0] == {
        "type": "Ready",
        "status": "True",
        "reason": "Ready",
        "message": "1 of 1 pods available",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "observedGeneration": 1,
    }


async def test_status_names_the_protocols_and_endpoints_of_the_applied_generation(world: World) -> None:
    url = f"http://triage.{NAMESPACE}.svc:8080"

    def stored() -> Any:
        return world.api.get(api.API_VERSION, api.KIND, NAMESPACE, "triage")["status"]  # type: ignore[index]

    world.agent()
    await world.reconcile()
    assert stored()["protocols"] == "openai,a2a,ag-ui"
    assert stored()["endpoints"]["openai"] == f"{url}/v1"

    world.agent(protocols=["a2a"])
    await world.reconcile()
    assert stored()["protocols"] == "a2a"
    assert (stored()["endpoints"]["a2a"], stored()["endpoints"]["openai"]) == (f"{url}/.well-known/agent.json", None)

    del world.api.secrets[(NAMESPACE, "jwt")]
    world.agent(protocols=[])
    assert (await world.reconcile()) is not None
    assert stored()["protocols"] == "a2a", "generation 3 is not applied: the pods still serve generation 2's"


async def test_events_mark_transitions_not_every_reconcile(world: World) -> None:
    world.agent()
    await world.reconcile()
    world.api.roll_out(NAMESPACE, "triage")
    for _ in range(3):
        await world.reconcile()

    assert world.reasons() == ["Ready"]
    ready = world.api.events[0]
    assert (ready.type, ready.ref.kind, ready.ref.name, ready.ref.namespace) == (
        "Normal",
        "AgentDeployment",
        "triage",
        NAMESPACE,
    )
    assert ready.ref.uid == world.api.get(api.API_VERSION, api.KIND, NAMESPACE, "triage")["metadata"]["uid"]  # type: ignore[index]


async def test_a_missing_secret_is_a_warning_then_ready_once_it_exists(world: World) -> None:
    del world.api.secrets[(NAMESPACE, "jwt")]
    world.agent()

    problem = await world.reconcile()

    assert problem is not None and problem.reason == SECRET_NOT_FOUND
    assert world.api.writes == []  # nothing is applied while a Secret is missing
    assert [(e.type, e.reason) for e in world.api.events] == [("Warning", SECRET_NOT_FOUND)]
    world.api.secrets[(NAMESPACE, "jwt")] = {"key"}
    await world.reconcile()
    world.api.roll_out(NAMESPACE, "triage")
    await world.reconcile()
    assert world.reasons()[-1] == "Ready"


async def test_a_runtime_that_fails_to_start_is_the_ready_reason_with_its_line_and_stalls(world: World) -> None:
    world.agent()
    await world.reconcile()
    deployment = world.api.get("apps/v1", "Deployment", NAMESPACE, "triage")
    assert deployment is not None  # applied; its only pod never becomes available
    deployment["status"] = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "unavailableReplicas": 1}
    pod = {
        "metadata": {"name": "triage-5f7-abcde", "namespace": NAMESPACE, "labels": LABELS},
        "status": crash_looping(restarts=2),
    }
    info = pod_info(pod)
    assert info is not None
    verdict = runtime_failure([info])
    assert verdict is not None
    world.reconciler.set_health(NAMESPACE, "triage", verdict)
    await world.reconcile()

    status = world.api.get(api.API_VERSION, api.KIND, NAMESPACE, "triage")["status"]  # type: ignore[index]
    by_type = {c["type"]: c for c in status["conditions"]}
    assert (by_type["Ready"]["status"], by_type["Ready"]["reason"]) == ("False", "InvalidRuntimeConfig")
    assert by_type["Ready"]["message"] == f"pod triage-5f7-abcde: {LINE} (exit 2, restarts 2)"
    assert (by_type["Stalled"]["status"], by_type["Stalled"]["message"]) == ("True", by_type["Ready"]["message"])
    assert world.reasons() == [], "the health monitor posts the Event, once per line"

    world.reconciler.set_health(NAMESPACE, "triage", HealthVerdict(False, "AsExpected", ""))
    world.api.roll_out(NAMESPACE, "triage")
    await world.reconcile()
    status = world.api.get(api.API_VERSION, api.KIND, NAMESPACE, "triage")["status"]  # type: ignore[index]
    assert {c["type"]: c["reason"] for c in status["conditions"]} == {
        "Ready": "Ready",
        "Progressing": "Complete",
        "Degraded": "AsExpected",
    }


# --- retries -----------------------------------------------------------------------------------


@pytest.fixture
async def looping(world: World) -> AsyncIterator[World]:
    """The world with the reconciler's resync loop running on its clock."""
    task = asyncio.create_task(world.reconciler.resync_forever(tick=0.001))
    yield world
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def _after(world: World, seconds: float) -> int:
    """Move the clock on, let the loop run, and return how many reconciles it started (and finished) since."""
    reads, outcomes = world.api.agent_reads, len(world.outcomes)
    world.clock.now += seconds
    await asyncio.sleep(0.05)  # the loop ticks every millisecond: anything due has started by now
    started = world.api.agent_reads - reads
    for _ in range(200):  # up to 2 s on a busy machine
        if len(world.outcomes) - outcomes >= started:
            break
        await asyncio.sleep(0.01)
    return started


async def test_a_problem_is_retried_with_growing_delays_then_resynced_once_healed(looping: World) -> None:
    world = looping
    del world.api.secrets[(NAMESPACE, "jwt")]
    world.agent()
    await world.reconcile()

    for delay in (2, 4, 8, 10, 10):  # base 2, doubling, capped at 10
        assert await _after(world, delay - 0.5) == 0, f"retried before {delay}s"
        assert await _after(world, 0.5) == 1, f"not retried after {delay}s"
    assert world.outcomes[-1] == SECRET_NOT_FOUND

    world.api.secrets[(NAMESPACE, "jwt")] = {"key"}  # no trigger: the retry loop notices
    assert await _after(world, 10) == 1
    assert world.owned("Deployment") == ["triage"]
    assert world.outcomes[-1] is None
    assert await _after(world, 299) == 0, "a healed agent waits for the resync"
    assert await _after(world, 1) == 1


async def test_an_api_error_is_retried_by_the_reconciler_and_counted(looping: World) -> None:
    world = looping
    world.agent()
    world.api.broken.add("apply_child")

    with pytest.raises(ConnectionError):
        await world.reconcile()
    assert world.outcomes == [RECONCILE_ERROR]

    world.api.broken.clear()
    assert await _after(world, 2) == 1
    assert world.owned("Deployment") == ["triage"]
    assert world.outcomes[-1] is None


async def test_a_failed_read_of_the_agent_in_the_loop_is_retried_too(looping: World) -> None:
    world = looping
    world.agent()
    await world.reconcile()
    world.api.broken.add("agent")

    assert await _after(world, 300) == 0  # the read failed (and was not counted)
    world.api.broken.clear()
    assert await _after(world, 2) == 1, "retried after the base delay, not after another resync"


def _pdb(name: str, *, labels: dict[str, str], owners: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NAMESPACE, "labels": labels}
    if owners:
        meta["ownerReferences"] = owners
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta, "spec": {"maxUnavailable": 1}}


def _configmap(name: str, *, labels: dict[str, str], data: dict[str, str]) -> dict[str, Any]:
    meta = {"name": name, "namespace": NAMESPACE, "labels": labels}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}
