"""The operator's own Prometheus metrics: health polls, restarts, scale actions, reconciles, agents by condition."""

from __future__ import annotations

import collections
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .monitor import RoundReport


class OperatorMetrics:
    """One registry per operator process (not the global one, so tests can run several side by side)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.polls = Counter(
            "agentry_operator_health_polls", "Health polls of agent pods, by result.", ["state"], registry=r
        )
        self.restarts = Counter(
            "agentry_operator_pod_restarts", "Pods deleted because they stayed unhealthy.", registry=r
        )
        self.restarts_held = Counter(
            "agentry_operator_restarts_held_back",
            "Failing pods not restarted (rollout, cooldown, budget, disruption budget).",
            registry=r,
        )
        self.scale_actions = Counter(
            "agentry_operator_scale_actions", "Replica changes made by the operator.", ["direction"], registry=r
        )
        self.round_failures = Counter(
            "agentry_operator_health_round_failures", "Health rounds that failed with an error.", registry=r
        )
        self.round_seconds = Histogram(
            "agentry_operator_health_round_seconds",
            "Duration of one agent's health round.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.reconcile_seconds = Histogram(
            "agentry_operator_reconcile_seconds",
            "Duration of one reconcile.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.reconcile_failures = Counter(
            "agentry_operator_reconcile_failures",
            "Reconciles that ended in a problem (the Ready reason, e.g. SecretNotFound) or an error (Error).",
            ["reason"],
            registry=r,
        )

    def observe_reconcile(self, reason: str | None) -> None:
        """Count a reconcile that failed with `reason` (a CamelCase word from a bounded set); None is a success."""
        if reason is not None:
            self.reconcile_failures.labels(reason=reason).inc()

    def watch_agents(self, statuses: Callable[[], Iterable[Mapping[str, Any]]]) -> None:
        """Export `agentry_operator_agents{condition,status}`, counted from `statuses` at every scrape."""
        self.registry.register(AgentConditions(statuses))

    def observe_round(self, report: RoundReport, *, seconds: float) -> None:
        """Count one health round's polls and actions."""
        for poll in report.polls.values():
            self.polls.labels(state=str(poll.state)).inc()
        self.restarts.inc(len(report.restart.restart))
        self.restarts_held.inc(len(report.restart.held_back))
        if report.scale is not None:
            direction = "out" if report.scale.replicas > report.replicas_before else "in"
            self.scale_actions.labels(direction=direction).inc()
        self.round_seconds.observe(seconds)


class AgentConditions(Collector):
    """How many agents have each condition in each status: a stuck agent shows as Ready=False > 0.

    Counted at scrape time from the statuses the reconciler last computed, so it needs no bookkeeping of its
    own. No agent name or reason among the labels: the series stay a handful however many agents there are
    (which agent, and why, is in `kubectl get agents` and the reconcile failures' reasons).
    """

    STATUSES = ("True", "False", "Unknown")

    def __init__(self, statuses: Callable[[], Iterable[Mapping[str, Any]]]) -> None:
        self._statuses = statuses

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Agents by condition and status (every status of every type seen, zeros included); Degraded ones by reason."""
        counts: collections.Counter[tuple[str, str]] = collections.Counter()
        degraded: collections.Counter[str] = collections.Counter()
        for status in self._statuses():
            for condition in status.get("conditions") or ():
                counts[(str(condition["type"]), str(condition["status"]))] += 1
                if condition["type"] == "Degraded" and condition["status"] == "True":
                    degraded[str(condition.get("reason") or "")] += 1
        family = GaugeMetricFamily(
            "agentry_operator_agents", "Agents by condition type and status.", labels=["condition", "status"]
        )
        for kind in sorted({kind for kind, _ in counts}):
            for value in self.STATUSES:
                family.add_metric([kind, value], counts[(kind, value)])
        yield family
        # Reasons are the operator's own CamelCase words (status.py), a bounded set: RestartBudgetExhausted, ...
        reasons = GaugeMetricFamily(
            "agentry_operator_degraded_agents",
            "Agents with Degraded=True, by the condition's reason.",
            labels=["reason"],
        )
        for reason in sorted(degraded):
            reasons.add_metric([reason], degraded[reason])
        yield reasons


async def serve_metrics(
    metrics: OperatorMetrics, *, endpoint: str, sock: socket.socket | None = None
) -> web.AppRunner | None:
    """Serve /metrics in Prometheus text format at `endpoint` (http://host:port/...); None when it is empty.

    `sock` is the socket `agentry-operator` bound at start-up (so a taken port failed there, in one line).
    """
    if not endpoint:
        return None
    url = urlsplit(endpoint)

    async def handle(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = (
        web.SockSite(runner, sock)
        if sock is not None
        else web.TCPSite(runner, url.hostname or "0.0.0.0", url.port or 9090)
    )
    await site.start()
    return runner
