"""One health round for one agent: gather, poll, decide (pure policy), act, and report what happened."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from agentry_api.v1alpha1 import AgentDeploymentSpec

from ..rollout import DeploymentView
from .policy import (
    LoadSample,
    PodState,
    PodView,
    Poll,
    RestartPlan,
    ScalePlan,
    plan_restarts,
    plan_scale,
    sample_load,
)
from .poller import PodTarget, Poller

#: Polls kept per pod: enough for the largest failure threshold plus context for the status message.
HISTORY_PER_POD = 20


class ClusterIO(Protocol):
    """The reads and writes one health round needs; the operator implements it with its API client."""

    async def pods(self) -> list[PodView]:
        """The agent's pods."""

    async def deployment(self) -> DeploymentView | None:
        """The agent's Deployment, or None while it does not exist."""

    async def delete_pod(self, name: str) -> None:
        """Delete a pod so that its ReplicaSet replaces it."""

    async def scale(self, replicas: int) -> None:
        """Set the agent's replicas through its scale subresource."""


@dataclass
class AgentMemory:
    """What the monitor remembers about one agent between rounds; every collection is bounded."""

    histories: dict[str, deque[Poll]] = field(default_factory=dict)
    samples: deque[LoadSample] = field(default_factory=lambda: deque(maxlen=2000))
    restart_times: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    answered: set[str] = field(default_factory=set)
    """Pods that have answered a poll at least once (only those are ever restarted)."""

    def record(self, polls: Mapping[str, Poll], *, live: set[str], sample: LoadSample) -> None:
        """Add a round of polls and forget pods that no longer exist."""
        for name in list(self.histories):
            if name not in live:
                del self.histories[name]
        self.answered &= live
        for name, poll in polls.items():
            self.histories.setdefault(name, deque(maxlen=HISTORY_PER_POD)).append(poll)
            if poll.state != PodState.UNREACHABLE:
                self.answered.add(name)
        self.samples.append(sample)


@dataclass(frozen=True)
class RoundReport:
    """The outcome of one round, for the status and the Events."""

    checked_at: float
    polls: Mapping[str, Poll]
    restart: RestartPlan
    scale: ScalePlan | None
    replicas_before: int

    @property
    def healthy(self) -> int:
        """Pods whose poll this round said healthy."""
        return sum(1 for poll in self.polls.values() if poll.state == PodState.HEALTHY)

    @property
    def unwell(self) -> list[str]:
        """`pod: state (reason)` for each pod that is not healthy."""
        return [
            f"{name}: {poll.state}" + (f" ({poll.reason})" if poll.reason else "")
            for name, poll in sorted(self.polls.items())
            if poll.state != PodState.HEALTHY
        ]


async def run_round(
    *,
    spec: AgentDeploymentSpec,
    current_replicas: int,
    io: ClusterIO,
    poller: Poller,
    memory: AgentMemory,
    port: int,
    now: float,
) -> RoundReport:
    """Poll every pod of the agent once, then restart and scale as the policies say."""
    pods = await io.pods()
    deployment = await io.deployment()
    targets = [PodTarget(name=pod.name, ip=pod.ip, port=port) for pod in pods if pod.ip and not pod.terminating]
    polls = await poller.poll_all(targets, health=spec.health)
    memory.record(polls, live={pod.name for pod in pods}, sample=sample_load(list(polls.values()), at=now))
    restart = RestartPlan()
    if deployment is not None:
        restart = plan_restarts(
            histories=memory.histories,
            pods={pod.name: pod for pod in pods},
            deployment=deployment,
            restart_times=list(memory.restart_times),
            health=spec.health,
            max_unavailable=1,
            now=now,
            answered=memory.answered,
        )
    for name in restart.restart:
        await io.delete_pod(name)
        memory.restart_times.append(now)
        memory.histories.pop(name, None)
    scale = plan_scale(
        samples=list(memory.samples),
        scaling=spec.autoscaling,
        current=current_replicas,
        poll_interval=spec.health.poll_interval_seconds,
        now=now,
    )
    if scale is not None and scale.replicas != current_replicas:
        await io.scale(scale.replicas)
        memory.samples.clear()
    else:
        scale = None
    return RoundReport(checked_at=now, polls=polls, restart=restart, scale=scale, replicas_before=current_replicas)
