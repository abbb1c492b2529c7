"""Health decisions as pure functions: classify a poll, decide restarts, recommend a replica count.

Nothing here does I/O or reads a clock: the monitor gathers polls, pods and the Deployment's state and
passes `now` in, so every rule (hysteresis, grace, cooldown, budget, windows) is tested without a cluster.
The rules exist because naive health-poll restarts are harmful: a pod that is slow while the agent
scales up, or that flaps, must not be restarted in a loop.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, TypedDict

from pydantic import ValidationError

from agentry_api.base import error_lines
from agentry_api.health import HealthReport, Spend
from agentry_api.v1alpha1 import AutoscalingProvider, AutoscalingSpec, HealthSpec

from ..rollout import DeploymentView
from .failures import ContainerFailure

HOUR = 3600.0
#: The start of the reason of an answer that is JSON but not the runtime's HealthReport.
NOT_A_REPORT = "health answer does not match the runtime's report"


class PodState(StrEnum):
    """What one poll says about a pod."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    UNREACHABLE = "unreachable"


FAILING = frozenset({PodState.UNHEALTHY, PodState.UNREACHABLE})


@dataclass(frozen=True)
class Poll:
    """One poll of one pod's /health, reduced to what the policies need."""

    at: float
    state: PodState
    reason: str = ""
    in_flight: int = 0
    queued: int = 0
    max_concurrent: int = 0
    p95_ms: float | None = None
    open_streams: int = 0
    active_conversations: int = 0
    spend: Spend | None = None


def classify(body: Mapping[str, Any] | None, *, at: float, health: HealthSpec, error: str = "") -> Poll:
    """Reduce a /health answer to a Poll; `body` None means the pod could not be reached.

    The answer is read with the runtime's own model (agentry_api.health). One that does not match it is
    unhealthy, naming the first field that is wrong: something answers there, but not a runtime this
    operator can read. The runtime's own verdict is taken as the floor; the operator's thresholds from the
    spec (p95 latency, error rate) can only make it worse, never better.
    """
    if body is None:
        return Poll(at=at, state=PodState.UNREACHABLE, reason=error or "no answer")
    try:
        report = HealthReport.model_validate(body)
    except ValidationError as exc:
        return Poll(at=at, state=PodState.UNHEALTHY, reason=f"{NOT_A_REPORT}: {error_lines(exc)[0]}")
    state, reason = _runtime_verdict(report)
    p95 = report.latency_ms.p95
    error_percent = 100.0 * report.error_rate
    if state == PodState.HEALTHY and health.max_p95_latency_ms is not None and p95 > health.max_p95_latency_ms:
        state, reason = PodState.DEGRADED, f"p95 latency {p95:.0f} ms above {health.max_p95_latency_ms} ms"
    if state == PodState.HEALTHY and error_percent > health.max_error_rate_percent:
        state, reason = PodState.DEGRADED, f"error rate {error_percent:.1f}% above {health.max_error_rate_percent}%"
    return Poll(
        at=at,
        state=state,
        reason=reason,
        in_flight=report.in_flight,
        queued=report.queued,
        max_concurrent=report.max_concurrent,
        p95_ms=p95,
        open_streams=max(0, report.open_streams),
        active_conversations=max(0, report.active_conversations),
        spend=report.spend,
    )


def _runtime_verdict(report: HealthReport) -> tuple[PodState, str]:
    if report.status == "healthy":
        return PodState.HEALTHY, ""
    failing = [f"{dep.name}: {dep.state}" for dep in report.dependencies if dep.state != "ok"]
    detail = ", ".join(failing) or f"runtime reports {report.status!r}"
    if report.status == "degraded":
        return PodState.DEGRADED, detail
    return PodState.UNHEALTHY, detail


@dataclass(frozen=True)
class HealthVerdict:
    """What the health daemon concludes about an agent, for its Degraded condition."""

    degraded: bool
    reason: str
    message: str
    story: str = ""
    """What tells two verdicts apart for Events ('' means the reason and message): a runtime failure's
    restart count moves with every crash, its line does not, and one line is one Event."""

    @property
    def event_key(self) -> str:
        """Verdicts with the same key are the same story: the second one posts no Event."""
        return self.story or f"{self.reason}: {self.message}"


# --- restarts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodView:
    """A pod of the agent, small on purpose (many agents, many pods): the index entry and what the policy reads."""

    name: str
    started_at: float
    ready: bool = True
    terminating: bool = False
    ip: str = ""
    """Where its /health answers ('' before the pod has an address)."""
    failure: ContainerFailure | None = None
    """Its runtime container's last failure while it crash-loops (the kubelet's record), else None."""


def runtime_failure(pods: Collection[PodView]) -> HealthVerdict | None:
    """The failure of the newest pod whose runtime crash-loops, as a verdict; None when none does.

    No hysteresis: the kubelet already saw the container exit, and its line says why, so it is shown at
    once. The newest pod is preferred: during a rollout it runs the spec the user just wrote.
    """
    failing = [(pod, pod.failure) for pod in pods if pod.failure is not None and not pod.terminating]
    if not failing:
        return None
    pod, failure = max(failing, key=lambda item: (item[0].started_at, item[1].finished_at, item[0].name))
    return HealthVerdict(
        True,
        failure.reason,
        f"pod {pod.name}: {failure.line} (exit {failure.exit_code}, restarts {failure.restarts})",
        story=f"{failure.reason}: {failure.line}",
    )


@dataclass(frozen=True)
class RestartPlan:
    """Pods to delete now, and, when some failing pod is left alone, why."""

    restart: tuple[str, ...] = ()
    held_back: tuple[str, ...] = ()
    reason: str = ""
    budget_exhausted: bool = False


def failing_pods(histories: Mapping[str, Sequence[Poll]], *, threshold: int) -> list[str]:
    """Pods whose last `threshold` polls all failed (hysteresis: one bad poll is not enough)."""
    failing = []
    for name, history in sorted(histories.items()):
        recent = list(history)[-threshold:]
        if len(recent) == threshold and all(poll.state in FAILING for poll in recent):
            failing.append(name)
    return failing


def plan_restarts(
    *,
    histories: Mapping[str, Sequence[Poll]],
    pods: Mapping[str, PodView],
    deployment: DeploymentView,
    restart_times: Sequence[float],
    health: HealthSpec,
    max_unavailable: int,
    now: float,
    answered: Collection[str] | None = None,
) -> RestartPlan:
    """Decide which failing pods to restart, honouring rollouts, grace, disruption budget, cooldown and budget.

    `answered` names the pods that have answered a poll at least once (None: all). A pod that never came up
    is the start-up probe's business (the kubelet restarts it with back-off); restarting it from here would
    only add a second loop, and on a busy node slow starts would look like failures.
    """
    candidates = [
        name
        for name in failing_pods(histories, threshold=health.failure_threshold)
        if name in pods and not pods[name].terminating and (answered is None or name in answered)
    ]
    candidates = [name for name in candidates if now - pods[name].started_at >= health.startup_grace_seconds]
    if not candidates:
        return RestartPlan()
    held = tuple(candidates)
    if settling := deployment.settling:
        return RestartPlan(held_back=held, reason=f"not restarting while {settling}")
    recent = [at for at in restart_times if now - at < HOUR]
    if len(recent) >= health.max_restarts_per_hour:
        return RestartPlan(
            held_back=held,
            budget_exhausted=True,
            reason=f"restart budget exhausted: {len(recent)} restarts in the last hour "
            f"(spec.health.maxRestartsPerHour={health.max_restarts_per_hour})",
        )
    if recent and now - max(recent) < health.restart_cooldown_seconds:
        wait = health.restart_cooldown_seconds - (now - max(recent))
        return RestartPlan(held_back=held, reason=f"restart cooldown: {wait:.0f}s left")
    unavailable = sum(1 for pod in pods.values() if pod.terminating or not pod.ready)
    allowed = min(max_unavailable - unavailable, health.max_restarts_per_hour - len(recent))
    if allowed <= 0:
        return RestartPlan(held_back=held, reason="disruption budget allows no more unavailable pods")
    chosen = tuple(candidates[:allowed])
    rest = tuple(name for name in candidates if name not in chosen)
    return RestartPlan(restart=chosen, held_back=rest, reason="disruption budget" if rest else "")


# --- scaling -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadSample:
    """The agent's load in one poll round, summed over the pods that answered."""

    at: float
    pods: int
    in_flight: int
    queued: int
    p95_ms: float | None = None


@dataclass(frozen=True)
class ScalePlan:
    """A new replica count and the reason for it."""

    replicas: int
    reason: str


def sample_load(polls: Sequence[Poll], *, at: float) -> LoadSample:
    """Sum one round of polls (unreachable pods carry no load information and are left out)."""
    answered = [poll for poll in polls if poll.state != PodState.UNREACHABLE]
    p95s = [poll.p95_ms for poll in answered if poll.p95_ms is not None]
    return LoadSample(
        at=at,
        pods=len(answered),
        in_flight=sum(poll.in_flight for poll in answered),
        queued=sum(poll.queued for poll in answered),
        p95_ms=max(p95s) if p95s else None,
    )


class ActivityDict(TypedDict):
    """status.openStreams and status.activeConversations on the wire."""

    openStreams: int
    activeConversations: int


def activity(polls: Iterable[Poll], *, shared_database: bool) -> ActivityDict:
    """The agent's open streams (summed over the pods) and active conversations, from one round of polls.

    Each pod counts the conversations in its database. PostgreSQL (`shared_database`) is one table for every
    replica, so each pod reports the same total and the largest is taken; SQLite is a file per pod, so the
    pods' counts add up. A pod that did not answer carries 0, like a runtime too old to report them.
    """
    polls = list(polls)
    conversations = [poll.active_conversations for poll in polls]
    return {
        "openStreams": sum(poll.open_streams for poll in polls),
        "activeConversations": max(conversations, default=0) if shared_database else sum(conversations),
    }


BudgetLevel = Literal["warn", "exhausted"]


def agent_spend(polls: Iterable[Poll]) -> dict[str, Any] | None:
    """status.spend from one round of polls, or None when no pod reported a spend.

    Only the newest period counts (around midnight some pods may still report yesterday's). A shared ledger
    (Redis) gives every pod the same totals, so the largest is taken (a pod's read may be a moment old); pods
    without one keep their own ledgers, whose totals add up, and each holds the budget on its own, so the
    highest share of a budget is the one reported.
    """
    spends = [poll.spend for poll in polls if poll.spend is not None]
    if not spends:
        return None
    period = max(spend.period for spend in spends)
    current = [spend for spend in spends if spend.period == period]
    shared = all(spend.shared for spend in current)
    costs = [spend.cost for spend in current if spend.cost is not None]
    percents = [spend.budget_percent for spend in current if spend.budget_percent is not None]
    status: dict[str, Any] = {
        "period": period,
        "resetsAt": current[0].resets_at,
        "tokens": max(s.tokens for s in current) if shared else sum(s.tokens for s in current),
    }
    if costs:
        status["cost"] = round(max(costs) if shared else sum(costs), 9)
        status["currency"] = next(spend.currency for spend in current if spend.currency is not None)
    if percents:
        status["budgetPercent"] = max(percents)
    return status


def budget_level(spend: Mapping[str, Any] | None, *, warn_at_percent: int) -> BudgetLevel | None:
    """How far the agent's own budget is spent: `exhausted` at 100%, `warn` at warnAtPercent, else None."""
    percent = None if spend is None else spend.get("budgetPercent")
    if percent is None:
        return None
    if percent >= 100:
        return "exhausted"
    return "warn" if percent >= warn_at_percent else None


def _recommend(sample: LoadSample, *, current: int, scaling: AutoscalingSpec) -> tuple[int, str]:
    load = sample.in_flight + sample.queued
    wanted = math.ceil(load / scaling.target_in_flight_per_replica)
    reason = f"{load} requests in flight or queued, target {scaling.target_in_flight_per_replica} per replica"
    target_p95 = scaling.target_p95_latency_ms
    if target_p95 is not None and sample.p95_ms is not None and sample.p95_ms > target_p95 and wanted <= current:
        wanted, reason = current + 1, f"p95 latency {sample.p95_ms:.0f} ms above target {target_p95} ms"
    return max(scaling.min_replicas, min(scaling.max_replicas, wanted)), reason


def plan_scale(
    *,
    samples: Sequence[LoadSample],
    scaling: AutoscalingSpec,
    current: int,
    poll_interval: float,
    now: float,
    scale_up_polls: int = 3,
) -> ScalePlan | None:
    """Recommend a replica count, or None to leave it.

    Scale out when every one of the last `scale_up_polls` rounds asked for more (a spike must persist);
    scale in only when every round of the whole stabilisation window asked for less, and then only to the
    highest count any of them asked for. Only rounds in which all `current` pods answered count, so the
    pods a scale-out just added are not mistaken for idle capacity. Never when an HPA owns replicas.
    """
    if not scaling.enabled or scaling.provider == AutoscalingProvider.HPA:
        return None
    if current < scaling.min_replicas or current > scaling.max_replicas:
        bound = max(scaling.min_replicas, min(scaling.max_replicas, current))
        return ScalePlan(
            bound, f"{current} replicas outside autoscaling bounds {scaling.min_replicas}..{scaling.max_replicas}"
        )
    steady = [sample for sample in samples if sample.pods == current]
    recommendations = [(sample, *_recommend(sample, current=current, scaling=scaling)) for sample in steady]
    recent = recommendations[-scale_up_polls:]
    if len(recent) == scale_up_polls and all(wanted > current for _, wanted, _ in recent):
        target = min(wanted for _, wanted, _ in recent)
        return ScalePlan(target, f"scale out: {recent[-1][2]}, for {scale_up_polls} polls")
    window = scaling.scale_down_stabilization_seconds
    in_window = [(sample, wanted) for sample, wanted, _ in recommendations if now - sample.at <= window]
    covered = bool(recommendations) and now - recommendations[0][0].at >= window - poll_interval
    if covered and in_window and all(wanted < current for _, wanted in in_window):
        target = max(wanted for _, wanted in in_window)
        return ScalePlan(target, f"scale in: load stayed below {current} replicas' capacity for {window}s")
    return None
