"""One health daemon per AgentDeployment: a pod index fed by watch events, and a polling task per agent.

The daemons are asyncio tasks owned by this supervisor rather than kopf daemons: kopf puts a finalizer
on every object that has a daemon, and then an agent could not be deleted while the operator is down.
Here deletion stays with garbage collection, and a task simply stops when its agent is forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentry_api.v1alpha1 import AgentDeployment
from agentry_api.wiring import RUNTIME_PORT

from ..events import EventRef, EventSink, agent_ref
from ..render.labels import AGENT
from ..rollout import DeploymentView, deployment_view
from ..timestamps import epoch, timestamp
from .failures import container_failure
from .metrics import OperatorMetrics
from .monitor import AgentMemory, RoundReport, run_round
from .policy import (
    BudgetLevel,
    HealthVerdict,
    PodState,
    PodView,
    activity,
    agent_spend,
    budget_level,
    runtime_failure,
)
from .poller import Poller

logger = logging.getLogger(__name__)

#: lastHealthCheck is rewritten at most this often when nothing else in the health status changed.
HEARTBEAT_SECONDS = 60.0


class HealthApi(Protocol):
    """The API calls the health daemons make (the operator's API module implements them)."""

    async def deployment(self, *, namespace: str, name: str) -> dict[str, Any] | None:
        """The agent's Deployment, or None."""

    async def delete_pod(self, *, namespace: str, name: str) -> None:
        """Delete one pod (404 is fine)."""

    async def scale_agent(self, *, namespace: str, name: str, replicas: int) -> None:
        """Write spec.replicas through the AgentDeployment's scale subresource."""

    async def patch_status(self, *, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Merge-patch these fields of the AgentDeployment's status (the reconciler's fields stay)."""


VerdictSink = Callable[[str, str, HealthVerdict], None]


def pod_info(body: Mapping[str, Any]) -> PodView | None:
    """The small index entry of a pod (None for a pod without the agent label)."""
    meta, status = body.get("metadata") or {}, body.get("status") or {}
    started = status.get("startTime") or meta.get("creationTimestamp")
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return PodView(
        name=str(meta.get("name")),
        ip=str(status.get("podIP") or ""),
        started_at=epoch(started) if started else time.time(),
        ready=ready and status.get("phase") == "Running",
        terminating=bool(meta.get("deletionTimestamp")),
        failure=container_failure(status),
    )


@dataclass
class _Agent:
    agent: AgentDeployment
    uid: str
    replicas: int
    restarts: int
    task: asyncio.Task[None] | None = None
    memory: AgentMemory = field(default_factory=AgentMemory)
    last_status: dict[str, Any] = field(default_factory=dict)
    last_written: float = 0.0
    verdict: HealthVerdict | None = None
    budget_warned: tuple[str, BudgetLevel] | None = None
    """The period and level of the last budget Event, so each level is announced once per period."""


@dataclass
class _AgentIO:
    """ClusterIO for one agent: pods from the index, everything else through the API."""

    supervisor: HealthSupervisor
    namespace: str
    name: str

    async def pods(self) -> list[PodView]:
        return list(self.supervisor.index.get((self.namespace, self.name), {}).values())

    async def deployment(self) -> DeploymentView | None:
        body = await self.supervisor.api.deployment(namespace=self.namespace, name=self.name)
        return None if body is None else deployment_view(body)

    async def delete_pod(self, name: str) -> None:
        await self.supervisor.api.delete_pod(namespace=self.namespace, name=name)

    async def scale(self, replicas: int) -> None:
        await self.supervisor.api.scale_agent(namespace=self.namespace, name=self.name, replicas=replicas)


class HealthSupervisor:
    """Owns the pod index and one polling task per agent."""

    def __init__(
        self,
        *,
        api: HealthApi,
        poller: Poller,
        events: EventSink,
        verdicts: VerdictSink,
        metrics: OperatorMetrics,
        clock: Callable[[], float] = time.time,
        port: int = RUNTIME_PORT,
    ) -> None:
        self.api, self.poller, self.events, self.verdicts = api, poller, events, verdicts
        self.metrics, self.clock, self.port = metrics, clock, port
        self.index: dict[tuple[str, str], dict[str, PodView]] = {}
        self.agents: dict[tuple[str, str], _Agent] = {}

    # --- inputs from watch events --------------------------------------------------------------

    def on_pod_event(self, *, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Keep the index in step with the pods (DELETED removes the entry)."""
        meta = body.get("metadata") or {}
        agent = (meta.get("labels") or {}).get(AGENT)
        if not agent or not meta.get("namespace"):
            return
        key = (str(meta["namespace"]), str(agent))
        pods = self.index.setdefault(key, {})
        if event_type == "DELETED":
            pods.pop(str(meta.get("name")), None)
            if not pods:
                del self.index[key]
            return
        info = pod_info(body)
        if info is not None:
            pods[info.name] = info

    def ensure(self, body: Mapping[str, Any], agent: AgentDeployment) -> None:
        """Start the agent's daemon, or hand it the new spec and replica count."""
        meta, status = body.get("metadata") or {}, body.get("status") or {}
        key = (agent.metadata.namespace, agent.metadata.name)
        state = self.agents.get(key)
        uid = str(meta.get("uid", ""))
        if state is not None and state.uid != uid:
            self.forget(*key)
            state = None
        replicas = agent.spec.desired_replicas()
        if state is None:
            state = self.agents[key] = _Agent(
                agent=agent, uid=uid, replicas=replicas, restarts=int(status.get("restarts") or 0)
            )
            state.budget_warned = _announced(agent, status.get("spend"))
        state.agent, state.replicas = agent, replicas
        if state.task is None or state.task.done():
            state.task = asyncio.create_task(self._run(key), name=f"health-{key[0]}/{key[1]}")

    def forget(self, namespace: str, name: str) -> None:
        """Stop the daemon of a deleted agent and drop what it remembered."""
        state = self.agents.pop((namespace, name), None)
        if state is not None and state.task is not None:
            state.task.cancel()

    async def close(self) -> None:
        """Stop every daemon (operator shutdown)."""
        tasks = [state.task for state in self.agents.values() if state.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- the daemon ----------------------------------------------------------------------------

    async def _run(self, key: tuple[str, str]) -> None:
        while key in self.agents:
            interval = self.agents[key].agent.spec.health.poll_interval_seconds
            await asyncio.sleep(interval * random.uniform(0.9, 1.1))  # jitter spreads many agents' polls
            state = self.agents.get(key)
            if state is None:
                return
            try:
                await self._round(state)
            except asyncio.CancelledError:
                raise
            except Exception:  # the next round tries again; one failed round must not end the daemon
                logger.exception("%s/%s: health round failed", *key)
                self.metrics.round_failures.inc()

    async def _round(self, state: _Agent) -> None:
        meta = state.agent.metadata
        started = time.monotonic()
        report = await run_round(
            spec=state.agent.spec,
            current_replicas=state.replicas,
            io=_AgentIO(self, meta.namespace, meta.name),
            poller=self.poller,
            memory=state.memory,
            port=self.port,
            now=self.clock(),
        )
        self.metrics.observe_round(report, seconds=time.monotonic() - started)
        await self._announce(state, report)
        await self._write_status(state, report)

    def _ref(self, state: _Agent) -> EventRef:
        meta = state.agent.metadata
        return agent_ref(name=meta.name, namespace=meta.namespace, uid=state.uid)

    async def _announce(self, state: _Agent, report: RoundReport) -> None:
        """An Event per action, and a new verdict when the agent's health changed."""
        ref = self._ref(state)
        for pod in report.restart.restart:
            state.restarts += 1
            reason = report.polls[pod].reason if pod in report.polls else "failing"
            threshold = state.agent.spec.health.failure_threshold
            await self.events(
                ref,
                type="Warning",
                reason="PodRestarted",
                message=f"deleted pod {pod}: failing for {threshold} polls in a row ({reason})",
            )
        if report.scale is not None:
            state.replicas = report.scale.replicas
            await self.events(
                ref,
                type="Normal",
                reason="Scaled",
                message=f"{report.replicas_before} -> {report.scale.replicas} replicas: {report.scale.reason}",
            )
        await self._announce_budget(state, report)
        health = state.agent.spec.health
        meta = state.agent.metadata
        pods = list(self.index.get((meta.namespace, meta.name), {}).values())
        starting = {pod.name for pod in pods if report.checked_at - pod.started_at < health.startup_grace_seconds}
        verdict = runtime_failure(pods) or _verdict(
            report, state.memory, threshold=health.failure_threshold, starting=starting
        )
        if verdict != state.verdict:
            before = state.verdict.event_key if state.verdict is not None else None
            if (verdict.degraded or state.verdict is not None) and verdict.event_key != before:
                kind = "Warning" if verdict.degraded else "Normal"
                await self.events(ref, type=kind, reason=verdict.reason, message=verdict.message)
            state.verdict = verdict
            self.verdicts(state.agent.metadata.namespace, state.agent.metadata.name, verdict)

    async def _announce_budget(self, state: _Agent, report: RoundReport) -> None:
        """A Warning Event when the agent's own budget crosses warnAtPercent, and one when it is spent.

        Once each per period: the level reached is remembered, and read back from status.spend after an
        operator restart.
        """
        budgets = state.agent.spec.security.budgets
        spend = agent_spend(report.polls.values())
        if budgets is None or spend is None:
            return
        level = budget_level(spend, warn_at_percent=budgets.warn_at_percent)
        if level is None:
            return
        seen = state.budget_warned
        if seen is not None and seen[0] == spend["period"] and (seen[1] == level or seen[1] == "exhausted"):
            return
        state.budget_warned = (str(spend["period"]), level)
        period = budgets.period.value
        percent = spend["budgetPercent"]
        if level == "exhausted":
            reason = "BudgetExhausted"
            message = (
                f"spent {percent:g}% of its {period} budget (spec.security.budgets.perAgent) in {spend['period']}: "
                f"runs are refused with 429 budget_exceeded until {spend['resetsAt']}"
            )
        else:
            reason = "BudgetWarning"
            message = (
                f"spent {percent:g}% of its {period} budget (spec.security.budgets.perAgent) in {spend['period']}, "
                f"past warnAtPercent {budgets.warn_at_percent}%; it resets at {spend['resetsAt']}"
            )
        await self.events(self._ref(state), type="Warning", reason=reason, message=message)

    async def _write_status(self, state: _Agent, report: RoundReport) -> None:
        health: dict[str, Any] = {
            "healthyReplicas": report.healthy,
            "degradedPods": [
                f"{name}: {poll.state}" for name, poll in sorted(report.polls.items()) if poll.state != PodState.HEALTHY
            ],
            "restarts": state.restarts,
        }
        if report.scale is not None:
            health["lastScale"] = {
                "time": timestamp(report.checked_at),
                "from": report.replicas_before,
                "to": report.scale.replicas,
                "reason": report.scale.reason,
            }
        due = report.checked_at - state.last_written >= HEARTBEAT_SECONDS
        if health == {k: state.last_status.get(k) for k in health} and not due:
            return
        meta = state.agent.metadata
        # The counts ride along: they move with every stream, and a status write per poll of every agent would
        # load the API server; they are at most HEARTBEAT_SECONDS old.
        counts: dict[str, Any] = dict(
            activity(report.polls.values(), shared_database=state.agent.spec.services.database is not None)
        )
        spend = agent_spend(report.polls.values())
        if spend is not None:
            counts["spend"] = spend
        checked = {"lastHealthCheck": timestamp(report.checked_at)}
        await self.api.patch_status(namespace=meta.namespace, name=meta.name, status=health | counts | checked)
        state.last_status, state.last_written = health, report.checked_at


def _announced(agent: AgentDeployment, spend: Any) -> tuple[str, BudgetLevel] | None:
    """The budget level status.spend shows already: announced by this operator before it restarted."""
    budgets = agent.spec.security.budgets
    if budgets is None or not isinstance(spend, Mapping) or not isinstance(spend.get("period"), str):
        return None
    level = budget_level(spend, warn_at_percent=budgets.warn_at_percent)
    return None if level is None else (spend["period"], level)


def _verdict(report: RoundReport, memory: AgentMemory, *, threshold: int, starting: set[str]) -> HealthVerdict:
    """Degraded when the restart budget ran out, or when some pod stayed unwell for `threshold` polls.

    The same hysteresis as for restarts: one slow poll does not flip the condition (and post an Event),
    and a pod within its start-up grace is starting, not unwell.
    """
    if report.restart.budget_exhausted:
        return HealthVerdict(True, "RestartBudgetExhausted", report.restart.reason)
    lasting = sorted(
        name
        for name, history in memory.histories.items()
        if name not in starting
        and len(history) >= threshold
        and all(poll.state != PodState.HEALTHY for poll in list(history)[-threshold:])
    )
    if lasting:
        latest = {name: memory.histories[name][-1] for name in lasting}
        detail = "; ".join(
            f"{name}: {poll.state}" + (f" ({poll.reason})" if poll.reason else "") for name, poll in latest.items()
        )
        reason = "PodsUnhealthy" if any(p.state != PodState.DEGRADED for p in latest.values()) else "PodsDegraded"
        return HealthVerdict(True, reason, detail[:1000])
    return HealthVerdict(False, "AsExpected", f"no pod unwell for {threshold} polls in a row")
