"""What Agentry gives a user's own PydanticAI agent: the services its tools reach through `RunContext.deps`.

An AgentDeployment with `spec.agent.code: {entrypoint: "support_bot.agent:agent"}` imports that attribute from
the pod's image. It may be:

- a pydantic-ai `Agent` whose `deps_type` is `AgentryDeps` (or that takes no deps): each run gets an
  `AgentryDeps` with the agent's services, the calling principal, the run id and a logger;
- an `AgentApp`, when the agent has its own deps type (`AgentApp(agent, deps=lambda d: MyDeps(db=d.database))`)
  or health checks of its own;
- a factory, a function given the agent's `Services` that returns either (called once at start-up, before the
  services connect: keep the services for the tools, do no I/O in the factory).

    from pydantic_ai import Agent, RunContext
    from agent_runtime.sdk import AgentryDeps

    agent = Agent("openai-chat:gpt-4o-mini", deps_type=AgentryDeps, instructions="You file support tickets.")

    @agent.tool
    async def file_ticket(ctx: RunContext[AgentryDeps], title: str) -> str:
        await ctx.deps.database.put("tickets", ctx.deps.run_id, {"title": title, "by": ctx.deps.caller.subject})
        return "filed"

In production the services are PostgreSQL (or SQLite on the pod's volume), Redis (or an in-process cache) and an
HTTP client with retries and a circuit breaker, as `spec.services` says; in tests, `agent_runtime.testing` gives
in-memory ones that record their calls.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeAlias, TypeVar

import httpx
from pydantic_ai import Agent

from .services.protocols import Json

__all__ = [
    "AgentApp",
    "AgentryDeps",
    "Cache",
    "Caller",
    "Database",
    "ExternalApi",
    "HealthCheck",
    "Json",
    "Services",
]

DepsT = TypeVar("DepsT")


class Database(Protocol):
    """Records the agent's tools keep: JSON values by collection and key, shared by every replica.

    Collections and keys are free-form text (at most 200 and 500 characters); the runtime's own tables (results,
    audit) are out of reach.
    """

    async def put(self, collection: str, key: str, value: Json) -> None:
        """Store `value` under `key`, replacing what was there."""

    async def get(self, collection: str, key: str) -> Json:
        """The stored value, or None when there is none."""

    async def delete(self, collection: str, key: str) -> bool:
        """Delete the record; False when there was none."""

    async def list(self, collection: str, *, prefix: str = "", limit: int = 100) -> list[tuple[str, Json]]:
        """Records whose key starts with `prefix`, in key order, at most `limit` (1-1000)."""


class Cache(Protocol):
    """A key-value cache with TTLs, shared by the replicas when `spec.services.cache` is Redis.

    Keys live in the agent's own namespace: they never collide with the runtime's entries or other agents'.
    """

    async def get(self, key: str) -> str | None:
        """The value, or None when absent or expired."""

    async def set(self, key: str, value: str, *, ttl_seconds: float | None = None) -> None:
        """Store `value`; None ttl means the spec's default TTL."""

    async def invalidate(self, pattern: str) -> int:
        """Delete the keys matching a glob pattern (`tickets:*`); return how many were deleted."""


class ExternalApi(Protocol):
    """The API at `spec.services.externalAPI.baseURL`: timeouts, retries of idempotent calls, a circuit breaker.

    `request` raises `agent_runtime.services.http.ExternalApiError` when the API fails or times out and
    `agent_runtime.services.breaker.CircuitOpenError` while the breaker is open.
    """

    async def request(self, method: str, path: str, *, json: Any = None) -> httpx.Response:
        """Call `path` (relative to the base URL) and return the response."""


@dataclass(frozen=True)
class Services:
    """The agent's services, as `spec.services` configures them."""

    database: Database
    cache: Cache
    external_api: ExternalApi | None = None
    """None when the spec configures no external API."""


@dataclass(frozen=True)
class Caller:
    """The principal the run is for, as its verified token says."""

    subject: str
    """The token's `sub`; personal data, so keep it out of logs (the audit trail stores it redacted)."""
    roles: frozenset[str] = frozenset()
    """The roles the token grants."""


@dataclass(frozen=True)
class AgentryDeps:
    """The deps of one run: the services, who calls, the run's id and a logger."""

    services: Services
    caller: Caller
    run_id: str
    """The id the run's result is stored under and the audit record names."""
    log: logging.LoggerAdapter[logging.Logger] = field(
        default_factory=lambda: logging.LoggerAdapter(logging.getLogger("agentry.agent"))
    )
    """A logger whose lines carry the run id; log no prompt, output or personal data."""

    @property
    def database(self) -> Database:
        """The agent's records."""
        return self.services.database

    @property
    def cache(self) -> Cache:
        """The agent's cache."""
        return self.services.cache

    @property
    def external_api(self) -> ExternalApi | None:
        """The external API client, or None when none is configured."""
        return self.services.external_api


#: A check of one of the user's own dependencies: returns (any value) when it works, raises when it does not.
HealthCheck: TypeAlias = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class AgentApp(Generic[DepsT]):
    """A user's agent with what Agentry needs beyond the Agent itself."""

    agent: Agent[DepsT, Any]
    deps: Callable[[AgentryDeps], DepsT] | None = None
    """Builds the agent's own deps for each run from Agentry's; needed when its deps_type is not AgentryDeps."""
    checks: Mapping[str, HealthCheck] = field(default_factory=dict)
    """The user's own dependencies' checks, by name: /health shows each, and a failing one degrades the pod."""


#: A factory entrypoint: given the services, returns the agent.
AgentFactory: TypeAlias = Callable[[Services], "Agent[Any, Any] | AgentApp[Any]"]
