"""Prometheus metrics of one runtime, in a registry of its own (never the process-global one).

A registry per app keeps two runtimes in one process (tests, the benchmark) from colliding, and keeps
library metrics nobody asked for out of the scrape.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .services.breaker import STATE_VALUES, CircuitBreaker

#: Latency buckets in seconds, from a cached answer to a long multi-step run.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RuntimeMetrics:
    """The series the runtime exports; gauges of live state are read at scrape time."""

    def __init__(self, *, agent: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = {"agent": agent}
        self.requests = Counter(
            "agentry_requests", "HTTP requests by endpoint and status.", ["endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "agentry_request_duration_seconds",
            "Time from receiving a request to answering it.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "agentry_tokens",
            "Model tokens used, by direction (input or output).",
            ["direction"],
            registry=self.registry,
        )
        self.cost = Counter(
            "agentry_cost",
            "What the model tokens used cost at spec.agent.pricing, by currency (agents with a price table only).",
            ["currency"],
            registry=self.registry,
        )
        self.tool_calls = Counter(
            "agentry_tool_calls",
            "Tool calls by the agent's runs, by tool and outcome (ok or error).",
            ["tool", "outcome"],
            registry=self.registry,
        )
        self.tool_latency = Histogram(
            "agentry_tool_call_duration_seconds",
            "Time one tool call took.",
            ["tool"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter("agentry_errors", "Errors answered, by kind.", ["kind"], registry=self.registry)
        self.rate_limited = Counter(
            "agentry_rate_limited", "Requests refused by a per-principal rate limit.", ["limit"], registry=self.registry
        )
        # Budgets: by scope and kind, never by principal (a caller's crossing is a count, not a series per caller).
        self.budget_refused = Counter(
            "agentry_budget_refused",
            "Runs refused because a budget of spec.security.budgets was spent, by scope (principal or agent) and kind.",
            ["scope", "kind"],
            registry=self.registry,
        )
        self.budget_crossings = Counter(
            "agentry_budget_crossings",
            "Budgets a charge took past warnAtPercent (level warn) or to their end (exhausted), counted once "
            "by the replica whose charge crossed.",
            ["scope", "kind", "level"],
            registry=self.registry,
        )
        self.budget_spent = Gauge(
            "agentry_budget_spent",
            "The agent's spend this budget period as this pod last saw it (shared by the replicas with Redis): "
            "tokens, and cost in spec.agent.pricing's currency.",
            ["agent", "kind"],
            registry=self.registry,
        )
        self.budget_limit = Gauge(
            "agentry_budget_limit",
            "A budget of spec.security.budgets per period (tokens, or cost in the pricing's currency).",
            ["agent", "scope", "kind"],
            registry=self.registry,
        )
        self.budget_warn_ratio = Gauge(
            "agentry_budget_warn_ratio",
            "spec.security.budgets.warnAtPercent as a ratio (exported only with budgets).",
            ["agent"],
            registry=self.registry,
        )
        self.in_flight = Gauge("agentry_in_flight_requests", "Agent runs executing now.", registry=self.registry)
        self.queued = Gauge("agentry_queued_requests", "Requests waiting for a run slot.", registry=self.registry)
        # Totals without labels: a label per principal or conversation would be a series per user.
        self.open_streams = Gauge(
            "agentry_open_streams", "Streamed responses (Server-Sent Events) being sent now.", registry=self.registry
        )
        self.active_conversations = Gauge(
            "agentry_active_conversations",
            "Unexpired conversations in the agent's database (shared by the replicas with PostgreSQL), "
            "counted every few seconds.",
            registry=self.registry,
        )
        self.breaker_state = Gauge(
            "agentry_circuit_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            ["name"],
            registry=self.registry,
        )
        self.info = Gauge("agentry_agent_info", "The agent this runtime serves.", list(labels), registry=self.registry)
        self.info.labels(**labels).set(1)
        # The agent's own targets (spec.health), for alerts that compare each agent against its own.
        self.target_error_ratio = Gauge(
            "agentry_target_error_ratio",
            "spec.health.maxErrorRatePercent as a ratio: above it a pod counts as degraded.",
            list(labels),
            registry=self.registry,
        )
        self.target_p95 = Gauge(
            "agentry_target_p95_latency_seconds",
            "spec.health.maxP95LatencyMs in seconds (exported only when the spec sets it).",
            list(labels),
            registry=self.registry,
        )
        self._labels = labels

    def set_targets(self, *, error_ratio: float, p95_seconds: float | None) -> None:
        """Export the agent's health targets."""
        self.target_error_ratio.labels(**self._labels).set(error_ratio)
        if p95_seconds is not None:
            self.target_p95.labels(**self._labels).set(p95_seconds)

    def set_budgets(
        self,
        *,
        limits: Iterable[tuple[str, str, float]],
        warn_ratio: float | None,
        spent: Callable[[str], float],
        kinds: Iterable[str],
    ) -> None:
        """Export the agent's budgets (scope, kind, amount), and its spend of `kinds`, read at scrape time.

        Each budget's refusal and crossing counters start at 0, so `increase()` sees the first one too.
        """
        agent = self._labels["agent"]
        for scope, kind, amount in limits:
            self.budget_limit.labels(agent=agent, scope=scope, kind=kind).set(amount)
            self.budget_refused.labels(scope=scope, kind=kind)
            for level in ("warn", "exhausted"):
                self.budget_crossings.labels(scope=scope, kind=kind, level=level)
        if warn_ratio is not None:
            self.budget_warn_ratio.labels(agent=agent).set(warn_ratio)
        for kind in kinds:
            self.budget_spent.labels(agent=agent, kind=kind).set_function(functools.partial(spent, kind))

    def bind(self, *, in_flight: Callable[[], float], queued: Callable[[], float]) -> None:
        """Read the in-flight and queued gauges from the admission counters at scrape time."""
        self.in_flight.set_function(in_flight)
        self.queued.set_function(queued)

    def bind_activity(self, *, open_streams: Callable[[], float], active_conversations: Callable[[], float]) -> None:
        """Read the open streams and the last count of active conversations at scrape time."""
        self.open_streams.set_function(open_streams)
        self.active_conversations.set_function(active_conversations)

    def observe(self, *, endpoint: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()
        self.latency.labels(endpoint=endpoint).observe(seconds)

    def add_tokens(self, *, input_tokens: int, output_tokens: int) -> None:
        """Count the tokens of one run."""
        self.tokens.labels(direction="input").inc(input_tokens)
        self.tokens.labels(direction="output").inc(output_tokens)

    def add_cost(self, amount: float, *, currency: str) -> None:
        """Count what one model response's tokens cost (agents with spec.agent.pricing only)."""
        self.cost.labels(currency=currency).inc(amount)

    def observe_tool_call(self, *, tool: str, ok: bool, seconds: float) -> None:
        """Count one tool call; tool names are the agent's own (a name the model invents never gets called)."""
        self.tool_calls.labels(tool=tool, outcome="ok" if ok else "error").inc()
        self.tool_latency.labels(tool=tool).observe(seconds)

    def render(self, *, breakers: Iterable[CircuitBreaker]) -> bytes:
        """The Prometheus text exposition, with breaker states read now."""
        for breaker in breakers:
            self.breaker_state.labels(name=breaker.name).set(STATE_VALUES[breaker.state])
        return generate_latest(self.registry)
