"""The /health answer: one model that the runtime serialises and the operator parses.

The runtime builds a HealthReport and the operator's poller validates every answer against the same class, so
neither side types the keys by hand and a field renamed on one side is a failing test, not a silent zero.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Report(BaseModel):
    """camelCase on the wire; a reader ignores fields it does not know, the document says none are sent.

    The two sides are upgraded apart: the operator with its chart, the runtime with each agent's image. A newer
    runtime may add a field; an operator that refused it would call every upgraded pod unhealthy and restart it
    in a loop. So parsing ignores unknown fields (extra="ignore"), while the runtime's OpenAPI document keeps
    `additionalProperties: false`, because it describes what this runtime sends, exactly these fields, and the
    runtime's response-conformance tests hold it to that. Removing, renaming or narrowing a field stays a
    breaking change for both sides.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        json_schema_extra={"additionalProperties": False},
    )


class Percentiles(Report):
    """Latency percentiles of recent requests, in milliseconds."""

    p50: float
    p95: float
    p99: float


class Dependency(Report):
    """One dependency's check."""

    name: str
    state: Literal["ok", "degraded", "down"]
    detail: str
    latency_ms: float


class Breaker(Report):
    """One circuit breaker."""

    name: str
    state: Literal["closed", "open", "half-open"]
    failures: int


class Memory(Report):
    """Memory of the process."""

    rss_bytes: int


class Spend(Report):
    """What the agent spent in the current budget period (spec.security.budgets.period, daily without budgets).

    With a Redis cache the ledger is shared and every replica reports the same totals (`shared`); without one
    each pod reports its own. `budgetPercent` is the highest share of spec.security.budgets.perAgent reached
    (null without an agent budget).
    """

    period: str
    """The period's name: `2026-12-02` (daily) or `2026-12` (monthly), in UTC."""
    resets_at: str
    """When the next period starts (RFC 3339, UTC)."""
    tokens: int
    """Model tokens (in plus out) spent in the period."""
    cost: float | None
    """Their cost in `currency`; null for an agent without spec.agent.pricing."""
    currency: str | None
    """ISO 4217 code of `cost`."""
    shared: bool
    """The totals are the agent's across replicas (Redis), not this pod's alone."""
    budget_percent: float | None
    """The highest percentage of the agent's own budgets (tokens, cost) spent; null without one."""


class HealthReport(Report):
    """The runtime's own view of its health, polled by the operator.

    `successRate` and `errorRate` are fractions (0..1) of recent runs; `reasons` says why the status is
    not healthy. `openStreams` and `activeConversations` came later (issue 15): they default to 0, so the
    report of a runtime that predates them still parses.
    """

    status: Literal["healthy", "degraded", "unhealthy"]
    reasons: list[str]
    uptime_seconds: float
    memory: Memory
    in_flight: int
    queued: int
    max_concurrent: int
    max_queued: int
    draining: bool
    recent_requests: int
    success_rate: float
    error_rate: float
    latency_ms: Percentiles
    dependencies: list[Dependency]
    circuit_breakers: list[Breaker]
    open_streams: int = 0
    """Streamed responses (Server-Sent Events) this pod is sending now."""
    spend: Spend | None = None
    """The agent's spend in the current budget period (issue 16; absent from older runtimes)."""
    active_conversations: int = 0
    """Unexpired conversations in the agent's database, counted every few seconds, not per poll. With
    PostgreSQL every replica counts the same shared table; with SQLite each counts its own."""
