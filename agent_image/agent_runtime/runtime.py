"""The runtime: every part one process serves an agent with, and their start and stop.

The request envelope (envelope.py) uses the parts in order; tests build one with their own services or model.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import httpx2
from opentelemetry.sdk.trace.export import SpanExporter
from pydantic_ai.exceptions import UserError
from pydantic_ai.models import Model

from agentry_api.health import Spend
from agentry_api.outputschema import output_schema_problem

from . import sdk, usercode
from .admission import Admission
from .agent import RunOptions, declarative_agent, run_options
from .config import ConfigError, RuntimeConfig
from .conversation_count import ConversationCount
from .conversations import Conversations
from .execution import AgentRunner
from .heartbeat import Heartbeat
from .mcp import McpToolsets
from .metrics import RuntimeMetrics
from .pricing import PriceTable
from .security.audit import AuditTrail
from .security.auth import Authenticator, build_authenticator
from .security.budgets import NANOS, Budgets, build_budgets
from .security.guard import Guard
from .security.pii import Anonymizer
from .security.ratelimit import build_rate_limiter
from .services.breaker import CircuitBreaker
from .services.container import ServiceContainer, Services
from .services.protocols import ServiceHealth
from .services.redis_cache import RedisCache
from .services.traced import Traceable
from .services.views import agent_services
from .settings import RuntimeSettings
from .stats import RecentRequests
from .toolsets import AgentToolsets
from .tracing import Tracing

log = logging.getLogger(__name__)

#: Seconds the audit trail gets to stop its flusher at shutdown before the queue is stored directly.
AUDIT_CLOSE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Keys:
    """The secret values the security steps of the envelope need, picked from the config."""

    auth: str | None
    pii: bytes | None

    @classmethod
    def of(cls, config: RuntimeConfig) -> Keys:
        """The JWT verification key (HMAC secret or PEM public key) and the PII HMAC key."""
        auth = config.secret("spec.security.auth.secretRef") or config.secret("spec.security.auth.publicKeySecretRef")
        pii = config.secret("spec.security.privacy.hmacKeySecretRef")
        return cls(auth=auth, pii=pii.encode() if pii is not None else None)


class Runtime:
    """Owns the services, the agent runner, admission, statistics and the security parts of the envelope."""

    def __init__(
        self,
        *,
        config: RuntimeConfig,
        services: Services,
        settings: RuntimeSettings | None = None,
        model: Model | None = None,
        entrypoint: object | None = None,
        audit_stream: TextIO | None = None,
        span_exporter: SpanExporter | None = None,
    ) -> None:
        """A runtime for `config`, its services not started yet.

        `model` replaces the spec's (tests script the model's turns); `entrypoint` is the user's agent (Agent,
        AgentApp or factory) already imported, as the testing kit passes it, instead of spec.agent.code's import.
        `span_exporter` receives the spans instead of an OTLP collector (tests read them in memory).
        """
        self.config = config
        self.settings = settings or RuntimeSettings()
        self.services = services
        self.container = ServiceContainer(services, check_timeout=self.settings.dependency_check_timeout)
        self.metrics = RuntimeMetrics(agent=f"{config.namespace}/{config.name}")
        health = config.spec.health
        self.metrics.set_targets(
            error_ratio=health.max_error_rate_percent / 100,
            p95_seconds=None if health.max_p95_latency_ms is None else health.max_p95_latency_ms / 1000,
        )
        self.prices = PriceTable.from_spec(config.spec.agent.pricing)
        """spec.agent.pricing, or None: runs then report tokens, not cost."""
        concurrency = config.spec.concurrency
        self.admission = Admission(
            max_concurrent=concurrency.max_concurrent_requests, max_queued=concurrency.max_queued_requests
        )
        self.metrics.bind(in_flight=lambda: self.admission.in_flight, queued=lambda: self.admission.queued)
        self.stats = RecentRequests(
            capacity=self.settings.latency_window, window_seconds=self.settings.rate_window_seconds
        )
        self.agent_services = agent_services(services)
        self.toolsets = AgentToolsets(
            spec=config.spec.agent,
            services=services,
            mcp=McpToolsets.from_config(config, check_timeout=self.settings.dependency_check_timeout),
        )
        self.keys = Keys.of(config)
        self.authenticator = _authenticator(config=config, key=self.keys.auth)
        security = config.spec.security
        self.anonymizer = _anonymizer(config=config, key=self.keys.pii)
        self.tracing = Tracing.from_spec(
            config.spec.observability.tracing,
            service=config.name,
            namespace=config.namespace,
            headers=config.secret("spec.observability.tracing.headersSecretRef"),
            anonymizer=self.anonymizer,
            exporter=span_exporter,
        )
        if services.external_api is not None:
            services.external_api.wrap_transport(self.tracing.transport)
        for service in (services.database, services.cache):
            if isinstance(service, Traceable):
                service.tracer = self.tracing.tracer
        self.runner = AgentRunner(
            app=_app(config=config, services=self.agent_services, entrypoint=entrypoint),
            services=self.agent_services,
            options=_options(config=config, model=model, transport=self.tracing.model_transport()),
            toolsets=self.toolsets,
            timeout=concurrency.request_timeout_seconds,
            instrumentation=self.tracing.instrumentation,
        )
        self.audit = AuditTrail(
            services.database,
            agent=f"{config.namespace}/{config.name}",
            stream=audit_stream or sys.stdout,
            enabled=security.audit.enabled,
        )
        self.conversations = Conversations(
            spec=config.spec.conversations,
            store=services.database,
            anonymizer=self.anonymizer,
            owner_key=self.keys.pii,
            lease_seconds=concurrency.request_timeout_seconds,
        )
        self.conversation_count = ConversationCount(
            store=services.database,
            ttl_seconds=config.spec.conversations.ttl_seconds,
            interval=self.settings.conversation_count_interval,
            timeout=self.settings.dependency_check_timeout,
            clock=lambda: self.conversations.clock(),  # the conversations' own clock, which tests set
        )
        self.metrics.bind_activity(
            open_streams=lambda: self.admission.open_streams, active_conversations=lambda: self.conversation_count.value
        )
        self.heartbeat = Heartbeat(interval=self.settings.heartbeat_interval)
        self.started_at = time.monotonic()
        self._guard: Guard | None = None
        self.budget_clock: Callable[[], float] | None = None
        """Wall-clock time for the budgets' periods, set before start (tests move it); time.time otherwise."""
        self.start_failure: str | None = None
        """Why start() failed (one service's message, never a Secret's value), for the termination message."""

    @property
    def guard(self) -> Guard:
        """Authentication, authorisation and rate limits; built at start: shared limits need the connected Redis."""
        if self._guard is None:
            raise RuntimeError("runtime used before start()")
        return self._guard

    @property
    def ready(self) -> bool:
        """Services started and not draining: what /readyz reports."""
        return self._guard is not None and self.container.started and not self.admission.draining

    def breakers(self) -> list[CircuitBreaker]:
        """The circuit breakers whose state /health and /metrics show."""
        api = self.services.external_api
        return [api.breaker] if api is not None else []

    async def dependency_checks(self) -> list[ServiceHealth]:
        """Every dependency's state for /health: the services, the user's own checks, the envelope's parts."""
        app_checks = self.runner.app.checks
        services, mcp = await asyncio.gather(self.container.check(), self.toolsets.check())
        own = await asyncio.gather(*(self._app_check(name, check) for name, check in app_checks.items()))
        return [*services, *mcp, *own, *self.envelope_health()]

    async def _app_check(self, name: str, check: sdk.HealthCheck) -> ServiceHealth:
        """One of the user's checks: ok when it returns, degraded when it raises or outlasts the check timeout.

        Degraded, never down: a restart of the pod does not cure the user's dependency.
        """
        timeout = self.settings.dependency_check_timeout
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                await check()
        except TimeoutError:
            return ServiceHealth(name=name, state="degraded", detail=f"check timed out after {timeout:g}s")
        except Exception as exc:
            return ServiceHealth(name=name, state="degraded", detail=f"{type(exc).__name__}: {exc}")
        return ServiceHealth(name=name, state="ok", latency_ms=(time.perf_counter() - started) * 1000)

    async def spend(self) -> Spend | None:
        """The agent's spend this budget period, for /health (None before start)."""
        return None if self._guard is None else await self._guard.budgets.report()

    def envelope_health(self) -> list[ServiceHealth]:
        """The audit trail, the rate limiter and the budgets as dependencies: they degrade without failing requests."""
        audit = ServiceHealth(name="audit", state="ok", detail="enabled" if self.audit.enabled else "disabled")
        if not self.audit.healthy:
            detail = f"{self.audit.pending} records queued, not stored: {self.audit.last_error}"
            audit = ServiceHealth(name="audit", state="degraded", detail=detail)
        limiter = ServiceHealth(name="rateLimiter", state="ok", detail="")
        if self._guard is not None and not self._guard.limiter.healthy:
            limiter = ServiceHealth(name="rateLimiter", state="degraded", detail="shared limits down, per-pod fallback")
        found = [audit, limiter, *self._budgets_health()]
        tracing = self.tracing.health()
        return found if tracing is None else [*found, tracing]

    def _budgets_health(self) -> list[ServiceHealth]:
        """The budget ledger: degraded while a shared one (Redis) is down and spend is counted in this pod only."""
        if self._guard is None:
            return []
        ledger = self._guard.budgets.ledger
        if not ledger.shared:
            return [ServiceHealth(name="budgets", state="ok", detail="ledger per pod")]
        if ledger.healthy:
            return [ServiceHealth(name="budgets", state="ok", detail="shared ledger")]
        return [ServiceHealth(name="budgets", state="degraded", detail="shared ledger down, spend kept in this pod")]

    async def start(self) -> None:
        """Start the services, then the audit trail and the rate limiter; remember why when that fails."""
        try:
            await self._start()
        except Exception as exc:
            self.start_failure = str(exc) or type(exc).__name__
            raise

    async def _start(self) -> None:
        await self.container.start()
        try:
            await self.audit.start()
            self._guard = self._build_guard()
            await self.runner.start()
            await self.toolsets.start()
        except BaseException:
            await self.toolsets.close()
            await self.container.close()
            raise
        self.heartbeat.start()
        self.conversations.start_sweeping(interval=self.settings.conversation_sweep_interval)
        self.conversation_count.start()

    def drain(self) -> None:
        """Stop admitting new requests (SIGTERM); those admitted already finish."""
        self.admission.draining = True

    async def stop(self) -> None:
        """Flush the audit trail and close everything, in reverse order of start."""
        self.drain()
        await self.heartbeat.stop()
        await self.conversations.stop_sweeping()
        await self.conversation_count.stop()
        await self.toolsets.close()
        await self.runner.close()
        try:
            await self.audit.flush()
            await self._close_audit()
        finally:
            self._guard = None
            await self.container.close()
            await self.tracing.aclose()
            await asyncio.to_thread(self.tracing.shutdown)  # bounded: a dead collector cannot hold the stop up

    async def _close_audit(self) -> None:
        """Close the audit trail, but never let a stuck flusher task hang the shutdown.

        On Python 3.11 `asyncio.wait_for` can swallow a cancellation that races with its inner
        future finishing, and then a cancelled background task keeps running. If closing takes
        longer than AUDIT_CLOSE_TIMEOUT, the queue is stored directly, so no record is lost.
        """
        closing = asyncio.ensure_future(self.audit.close())
        try:
            async with asyncio.timeout(AUDIT_CLOSE_TIMEOUT):
                await asyncio.shield(closing)
        except TimeoutError:
            log.error("audit flusher did not stop; storing the queued records directly")
            await self.audit.flush()

    def _build_guard(self) -> Guard:
        security = self.config.spec.security
        cache = self.services.cache
        redis = cache.client if isinstance(cache, RedisCache) else None
        prefix = f"agentry:{self.config.namespace}:{self.config.name}"
        limiter = build_rate_limiter(security.rate_limit, redis=redis, prefix=f"{prefix}:ratelimit:")
        budgets = build_budgets(
            security.budgets, prices=self.prices, redis=redis, prefix=f"{prefix}:budget", key=self.keys.pii
        )
        if self.budget_clock is not None:
            budgets.clock = self.budget_clock
        self._export_budgets(budgets)
        return Guard(
            authenticator=self.authenticator,
            allowed_roles=tuple(security.authorization.allowed_roles),
            limiter=limiter,
            budgets=budgets,
            metrics=self.metrics,
        )

    def _export_budgets(self, budgets: Budgets) -> None:
        """The budgets and the agent's spend in the metrics (cost in currency units, as the spec gives it)."""
        policy = budgets.policy
        self.metrics.set_budgets(
            limits=[
                (limit.scope, limit.kind, limit.amount / NANOS if limit.kind == "cost" else limit.amount)
                for limit in policy.limits
            ],
            warn_ratio=policy.warn_at_percent / 100 if policy.limits else None,
            spent=lambda kind: budgets.spent_now().tokens if kind == "tokens" else budgets.spent_now().nanos / NANOS,
            kinds=("tokens",) if self.prices is None else ("tokens", "cost"),
        )


def _app(*, config: RuntimeConfig, services: sdk.Services, entrypoint: object | None) -> sdk.AgentApp[Any]:
    """The agent served: the user's, or the declarative one; ConfigError naming the field when it cannot be served.

    The user's is imported now, so a bad entrypoint fails before the port is bound.
    """
    agent_spec = config.spec.agent
    problem = output_schema_problem(agent_spec.output_schema) if agent_spec.output_schema else None
    if problem is not None:
        raise ConfigError([problem])
    code = agent_spec.code
    if code is None and entrypoint is None:
        return declarative_agent(agent_spec)
    name = code.entrypoint if code is not None else "(given)"
    try:
        target = entrypoint if entrypoint is not None else usercode.import_entrypoint(name)
        return usercode.resolve(name, target, services)
    except usercode.EntrypointError as exc:
        raise ConfigError([str(exc)]) from None


def _options(*, config: RuntimeConfig, model: Model | None, transport: httpx2.AsyncBaseTransport | None) -> RunOptions:
    """The per-run options, or ConfigError when the model's provider cannot be set up."""
    try:
        return run_options(
            spec=config.spec.agent,
            api_key=config.secret("spec.agent.endpoint.apiKeySecretRef"),
            model=model,
            transport=transport,
        )
    except UserError as exc:
        raise ConfigError([f"spec.agent.model: {exc}"]) from None


def _authenticator(*, config: RuntimeConfig, key: str | None) -> Authenticator:
    """The authenticator, or ConfigError when the key does not fit the algorithms."""
    try:
        return build_authenticator(config.spec.security.auth, key)
    except ValueError as exc:
        raise ConfigError([str(exc)]) from None


def _anonymizer(*, config: RuntimeConfig, key: bytes | None) -> Anonymizer:
    """The anonymizer, or ConfigError when the HMAC key is missing or too short."""
    try:
        return Anonymizer(config.spec.security.privacy, key)
    except ValueError as exc:
        raise ConfigError([str(exc)]) from None
