"""The operator's own Prometheus metrics: health polls, restarts, scale actions, reconcile durations."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

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


async def serve_metrics(metrics: OperatorMetrics, *, endpoint: str) -> web.AppRunner | None:
    """Serve /metrics in Prometheus text format at `endpoint` (http://host:port/...); None when it is empty."""
    if not endpoint:
        return None
    url = urlsplit(endpoint)

    async def handle(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, url.hostname or "0.0.0.0", url.port or 9090).start()
    return runner
