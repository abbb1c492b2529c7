"""The supervisor's index and bookkeeping: pod entries, Deployment views, Events, verdicts, status writes."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from agent_operator.events import EventRef
from agent_operator.health.metrics import OperatorMetrics
from agent_operator.health.policy import HealthVerdict
from agent_operator.health.poller import Poller
from agent_operator.health.supervisor import HEARTBEAT_SECONDS, HealthSupervisor, _Agent, pod_info
from agent_operator.rollout import deployment_view
from agentry_api.v1alpha1 import AgentDeployment
from tests.operator.health.reports import dependency, report_body
from tests.operator.health.servers import Handler, serving
from tests.operator.pods import crash_looping
from tests.services import free_port

AGENT = AgentDeployment.model_validate(
    {
        "metadata": {"name": "triage", "namespace": "team"},
        "spec": {
            "agent": {"model": "test"},
            "security": {"auth": {"mode": "none"}},
            "health": {"failureThreshold": 2, "startupGraceSeconds": 0, "maxRestartsPerHour": 1},
        },
    }
)


def _pod(name: str, ip: str, *, ready: bool = True, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "team", "labels": {"agentry.dev/agent": "triage"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "status": {
            "phase": "Running",
            "podIP": ip,
            "startTime": "2026-01-01T00:00:00Z",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_pod_info_is_small_and_exact() -> None:
    info = pod_info(_pod("a", "127.0.0.5", deleting=True))
    assert info is not None
    assert (info.name, info.ip, info.ready, info.terminating) == ("a", "127.0.0.5", True, True)
    assert info.started_at == 1767225600.0


def test_deployment_view() -> None:
    body = {
        "metadata": {"generation": 4},
        "spec": {"replicas": 3},
        "status": {"observedGeneration": 3, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3},
    }
    view = deployment_view(body)
    assert view.settling == "the Deployment controller has not seen the latest spec yet"


@dataclass
class RecordingApi:
    """Stands in for the API server in a unit test: one Deployment, records writes."""

    deleted: list[str] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)

    async def deployment(self, *, namespace: str, name: str) -> dict[str, Any]:
        return {"spec": {"replicas": 1}, "status": {"replicas": 1, "updatedReplicas": 1, "readyReplicas": 1}}

    async def delete_pod(self, *, namespace: str, name: str) -> None:
        self.deleted.append(name)

    async def scale_agent(self, *, namespace: str, name: str, replicas: int) -> None:
        raise AssertionError("autoscaling is off")

    async def patch_status(self, *, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self.statuses.append(dict(status))


async def test_rounds_restart_once_then_report_budget_exhausted() -> None:
    async def unhealthy(_: web.Request) -> web.Response:
        return web.json_response(report_body(status="unhealthy", dependencies=[dependency("database", "down")]))

    events: list[tuple[str, str]] = []

    async def record(ref: EventRef, *, type: str, reason: str, message: str) -> None:
        events.append((reason, message))

    verdicts: list[HealthVerdict] = []
    api = RecordingApi()
    clock = iter(range(1_767_230_000, 1_767_240_000, 10))  # after the pods started
    async with serving() as servers, aiohttp.ClientSession() as session:
        port = await servers.start(unhealthy)
        supervisor = HealthSupervisor(
            api=api,
            poller=Poller(session=session, max_concurrent=4, clock=time.time),
            events=record,
            verdicts=lambda ns, name, verdict: verdicts.append(verdict),
            metrics=OperatorMetrics(),
            clock=lambda: float(next(clock)),
            port=port,
        )
        supervisor.on_pod_event(event_type="ADDED", body=_pod("triage-1", "127.0.0.1"))
        supervisor.agents[("team", "triage")] = state = _new_state(supervisor)
        for _ in range(2):
            await supervisor._round(state)
        supervisor.on_pod_event(event_type="DELETED", body=_pod("triage-1", "127.0.0.1"))
        supervisor.on_pod_event(event_type="ADDED", body=_pod("triage-2", "127.0.0.1"))
        for _ in range(2):
            await supervisor._round(state)
    assert api.deleted == ["triage-1"], "the second pod is held back by the hourly budget of 1"
    reasons = [reason for reason, _ in events]
    assert reasons == ["PodRestarted", "RestartBudgetExhausted"]
    assert "database: down" in events[0][1]
    assert "maxRestartsPerHour=1" in events[1][1]
    assert [(v.degraded, v.reason) for v in verdicts] == [(False, "AsExpected"), (True, "RestartBudgetExhausted")]
    assert api.statuses[-1]["restarts"] == 1
    assert api.statuses[-1]["degradedPods"] == ["triage-2: unhealthy"]
    assert "lastHealthCheck" in api.statuses[-1]


def _new_state(supervisor: HealthSupervisor) -> Any:
    from agent_operator.health.supervisor import _Agent

    return _Agent(agent=AGENT, uid="u1", replicas=1, restarts=0)


async def test_a_crash_looping_runtime_is_one_warning_per_distinct_line_and_a_verdict_per_restart() -> None:
    events: list[tuple[str, str, str]] = []

    async def record(ref: EventRef, *, type: str, reason: str, message: str) -> None:
        events.append((type, reason, message))

    verdicts: list[HealthVerdict] = []
    async with aiohttp.ClientSession() as session:
        supervisor = HealthSupervisor(
            api=RecordingApi(),
            poller=Poller(session=session, max_concurrent=4, clock=time.time),
            events=record,
            verdicts=lambda ns, name, verdict: verdicts.append(verdict),
            metrics=OperatorMetrics(),
            clock=lambda: 1_767_230_000.0,
            port=free_port(),  # nothing listens: a crash-looping pod does not answer
        )
        supervisor.agents[("team", "triage")] = state = _new_state(supervisor)
        for restarts, line in [(1, "spec.x: bad"), (2, "spec.x: bad"), (3, "spec.y: worse")]:
            body = _pod("triage-1", "127.0.0.1", ready=False)
            body["status"].update(crash_looping(message=line, restarts=restarts))
            supervisor.on_pod_event(event_type="MODIFIED", body=body)
            await supervisor._round(state)
    assert [v.message for v in verdicts] == [
        "pod triage-1: spec.x: bad (exit 2, restarts 1)",
        "pod triage-1: spec.x: bad (exit 2, restarts 2)",
        "pod triage-1: spec.y: worse (exit 2, restarts 3)",
    ]
    assert events == [
        ("Warning", "InvalidRuntimeConfig", "pod triage-1: spec.x: bad (exit 2, restarts 1)"),
        ("Warning", "InvalidRuntimeConfig", "pod triage-1: spec.y: worse (exit 2, restarts 3)"),
    ]


WITH_POSTGRES = AgentDeployment.model_validate(
    AGENT.model_dump(by_alias=True, exclude_none=True)
    | {"spec": AGENT.spec.wire() | {"services": {"database": {"urlSecretRef": {"name": "pg", "key": "url"}}}}}
)


@pytest.mark.parametrize(
    ("agent", "conversations"), [(AGENT, [5 + 6, 5 + 9]), (WITH_POSTGRES, [6, 9])], ids=["sqlite", "postgresql"]
)
async def test_rounds_write_the_streams_and_conversations_of_every_pod_at_the_status_heartbeat(
    agent: AgentDeployment, conversations: list[int]
) -> None:
    counts = {"triage-1": [2, 5], "triage-2": [1, 6]}

    def answering(pod: str) -> Handler:
        async def answer(_: web.Request) -> web.Response:
            streams, active = counts[pod]
            return web.json_response(report_body(openStreams=streams, activeConversations=active))

        return answer

    api = RecordingApi()
    clock = iter([1_767_230_000.0, 1_767_230_010.0, 1_767_230_000.0 + HEARTBEAT_SECONDS])
    async with serving() as servers, aiohttp.ClientSession() as session:
        port = await servers.start(answering("triage-1"), host="127.0.0.1")
        await servers.start(answering("triage-2"), host="127.0.0.2", port=port)
        supervisor = HealthSupervisor(
            api=api,
            poller=Poller(session=session, max_concurrent=4, clock=time.time),
            events=_ignore_events,
            verdicts=lambda ns, name, verdict: None,
            metrics=OperatorMetrics(),
            clock=lambda: next(clock),
            port=port,
        )
        supervisor.on_pod_event(event_type="ADDED", body=_pod("triage-1", "127.0.0.1"))
        supervisor.on_pod_event(event_type="ADDED", body=_pod("triage-2", "127.0.0.2"))
        supervisor.agents[("team", "triage")] = state = _Agent(agent=agent, uid="u1", replicas=2, restarts=0)
        await supervisor._round(state)
        counts["triage-2"] = [0, 9]
        await supervisor._round(state)
        assert len(api.statuses) == 1, "a count that moved alone waits for the status heartbeat"
        await supervisor._round(state)
    assert [(s["openStreams"], s["activeConversations"]) for s in api.statuses] == [
        (3, conversations[0]),
        (2, conversations[1]),
    ]


async def _ignore_events(ref: EventRef, *, type: str, reason: str, message: str) -> None:
    """Events are not what this test is about."""


BUDGETED = AgentDeployment.model_validate(
    {
        "metadata": {"name": "triage", "namespace": "team"},
        "spec": {
            "agent": {"model": "test"},
            "security": {"auth": {"mode": "none"}, "budgets": {"perAgent": {"tokens": 1000}, "warnAtPercent": 75}},
        },
    }
)


def _spent(tokens: int, period: str = "2026-12-02") -> dict[str, Any]:
    return {
        "period": period,
        "resetsAt": "2026-12-03T00:00:00Z",
        "tokens": tokens,
        "cost": None,
        "currency": None,
        "shared": True,
        "budgetPercent": tokens / 10,
    }


async def test_the_agent_budget_is_announced_once_per_level_and_period_and_spend_reaches_the_status() -> None:
    spent = {"now": _spent(500)}

    async def answer(_: web.Request) -> web.Response:
        return web.json_response(report_body(spend=spent["now"]))

    events: list[tuple[str, str, str]] = []

    async def record(ref: EventRef, *, type: str, reason: str, message: str) -> None:
        events.append((type, reason, message))

    api = RecordingApi()
    ticks = iter(range(1_767_230_000, 1_767_240_000, 10))
    async with serving() as servers, aiohttp.ClientSession() as session:
        port = await servers.start(answer)
        supervisor = HealthSupervisor(
            api=api,
            poller=Poller(session=session, max_concurrent=4, clock=time.time),
            events=record,
            verdicts=lambda ns, name, verdict: None,
            metrics=OperatorMetrics(),
            clock=lambda: float(next(ticks)),
            port=port,
        )
        supervisor.on_pod_event(event_type="ADDED", body=_pod("triage-1", "127.0.0.1"))
        supervisor.agents[("team", "triage")] = state = _Agent(agent=BUDGETED, uid="u1", replicas=1, restarts=0)
        for tokens in (500, 760, 800, 1000, 1200):
            spent["now"] = _spent(tokens)
            await supervisor._round(state)
        spent["now"] = _spent(800, period="2026-12-03")
        await supervisor._round(state)
        restarted = HealthSupervisor(
            api=api,
            poller=supervisor.poller,
            events=record,
            verdicts=lambda ns, name, verdict: None,
            metrics=OperatorMetrics(),
            clock=lambda: float(next(ticks)),
            port=port,
        )
        restarted.on_pod_event(event_type="ADDED", body=_pod("triage-1", "127.0.0.1"))
        body = {
            "metadata": {"uid": "u1"},
            "status": {"spend": api.statuses[0]["spend"] | {"period": "2026-12-03", "budgetPercent": 80.0}},
        }
        restarted.ensure(body, BUDGETED)
        restarted_state = restarted.agents[("team", "triage")]
        assert restarted_state.task is not None
        restarted_state.task.cancel()
        await restarted._round(restarted_state)
    budget_events = [(kind, reason) for kind, reason, _ in events if reason.startswith("Budget")]
    assert budget_events == [
        ("Warning", "BudgetWarning"),
        ("Warning", "BudgetExhausted"),
        ("Warning", "BudgetWarning"),  # a new day
    ], "the restarted operator read the level from status.spend and posted nothing again"
    assert "spent 76% of its daily budget (spec.security.budgets.perAgent) in 2026-12-02" in events[0][2]
    assert "past warnAtPercent 75%" in events[0][2]
    assert "refused with 429 budget_exceeded until 2026-12-03T00:00:00Z" in events[1][2]
    assert api.statuses[0]["spend"] == {
        "period": "2026-12-02",
        "resetsAt": "2026-12-03T00:00:00Z",
        "tokens": 500,
        "budgetPercent": 50.0,
    }
