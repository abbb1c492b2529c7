"""Building runtimes for tests: a spec, its secrets, tokens, and the real server around it."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.sdk.trace.export import SpanExporter
from pydantic_ai.models import Model

from agent_runtime.app import build_app
from agent_runtime.config import RuntimeConfig, parse_document, resolve_secrets
from agent_runtime.runtime import Runtime
from agent_runtime.security.tokens import mint_token
from agent_runtime.server import DrainingServer
from agent_runtime.services.build import build_database, build_services
from agent_runtime.services.protocols import AuditRow
from agent_runtime.settings import RuntimeSettings
from agentry_api import wiring
from agentry_api.v1alpha1 import SecretKeyRef
from tests.support.agents import minimal_spec

from .servers import serve_in_thread

#: HMAC key of the test JWTs (HS256 wants at least 32 bytes).
JWT_KEY = "test-signing-key-that-is-32-bytes!"
JWT_REF = {"name": "jwt", "key": "key"}
PG_REF = {"name": "pg", "key": "url"}
REDIS_REF = {"name": "redis", "key": "url"}


def base_spec() -> dict[str, Any]:
    """A small valid spec: the offline model, JWT auth, generous limits."""
    generous = {
        "concurrency": {"maxConcurrentRequests": 4, "maxQueuedRequests": 8, "requestTimeoutSeconds": 10},
        "security": {
            "auth": {"mode": "jwt", "secretRef": JWT_REF},
            "authorization": {"allowedRoles": ["admin", "agent_operator", "read_only"]},
            "rateLimit": {"requestsPerMinute": 10_000, "tokensPerMinute": 10_000_000},
        },
    }
    return merge(minimal_spec(instructions="You are a test agent."), generous)


def merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `overrides` into a copy of `base` (dicts merge, other values replace)."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def env_for(secrets: Mapping[str, str], refs: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The AGENTRY_SECRET_* environment that supplies each Secret value."""
    return {wiring.secret_env_name(SecretKeyRef.model_validate(refs[path])): value for path, value in secrets.items()}


@dataclass
class Backend:
    """Where a runtime's services live: in-process (SQLite, memory cache) or real PostgreSQL and Redis."""

    data_dir: Path
    postgres_url: str | None = None
    redis_url: str | None = None
    environ: dict[str, str] = field(default_factory=dict)

    def spec(
        self, overrides: Mapping[str, Any] | None = None, *, agent: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The base spec with this backend's services and `overrides` merged in; `agent` replaces its agent."""
        spec = base_spec()
        if agent is not None:
            spec["agent"] = dict(agent)
        services: dict[str, Any] = {}
        if self.postgres_url:
            services["database"] = {"urlSecretRef": PG_REF}
        if self.redis_url:
            services["cache"] = {"urlSecretRef": REDIS_REF}
        spec["services"] = services
        return merge(spec, overrides or {})

    def env(self) -> dict[str, str]:
        """Secret values as environment variables."""
        values = {"jwt": JWT_KEY, "pg": self.postgres_url, "redis": self.redis_url}
        refs = {"jwt": JWT_REF, "pg": PG_REF, "redis": REDIS_REF}
        return {**env_for({k: v for k, v in values.items() if v}, refs), **self.environ}

    def config(
        self, overrides: Mapping[str, Any] | None = None, *, name: str = "agent", agent: Mapping[str, Any] | None = None
    ) -> RuntimeConfig:
        """A validated config with secrets resolved from `env()`."""
        _, _, spec = parse_document(self.spec(overrides, agent=agent))
        secrets = resolve_secrets(spec=spec, environ=self.env(), secrets_dir=str(self.data_dir / "no-secrets"))
        return RuntimeConfig(name=name, namespace="test", spec=spec, secrets=secrets)

    def runtime(
        self,
        overrides: Mapping[str, Any] | None = None,
        *,
        model: Model | None = None,
        settings: RuntimeSettings | None = None,
        agent: Mapping[str, Any] | None = None,
        span_exporter: SpanExporter | None = None,
    ) -> Runtime:
        """A runtime (not started) with services chosen from the spec; `agent` replaces the spec's agent section.

        `span_exporter` receives its spans (tracing on without a collector).
        """
        config = self.config(overrides, agent=agent)
        services = build_services(config=config, data_dir=self.data_dir)
        return Runtime(
            config=config,
            services=services,
            model=model,
            settings=settings,
            audit_stream=io.StringIO(),
            span_exporter=span_exporter,
        )


def token(*roles: str, subject: str = "alice@example.com", **kwargs: Any) -> str:
    """A valid bearer token for the test key."""
    return mint_token(key=JWT_KEY, subject=subject, roles=roles or ("agent_operator",), **kwargs)


def auth(*roles: str, subject: str = "alice@example.com") -> dict[str, str]:
    """The Authorization header of a valid token."""
    return {"Authorization": f"Bearer {token(*roles, subject=subject)}"}


@contextmanager
def serving(runtime: Runtime) -> Iterator[str]:
    """The runtime's app on a real uvicorn (with the SIGTERM-draining server class) in a thread."""
    with serve_in_thread(build_app(runtime), server_class=DrainingServer, runtime=runtime) as url:
        yield url


async def wait_for_load(client: httpx.AsyncClient, *, in_flight: int, queued: int) -> dict[str, Any]:
    """Poll /health until the runtime reports this load (at most 5 s), and return that report."""
    async with asyncio.timeout(5):
        while True:
            report: dict[str, Any] = (await client.get("/health")).json()
            if (report["inFlight"], report["queued"]) == (in_flight, queued):
                return report
            await asyncio.sleep(0.02)


async def stored_rows(runtime: Runtime, backend: Backend) -> list[AuditRow]:
    """The stored audit rows, read with a fresh connection after the server stopped."""
    database = build_database(config=runtime.config, data_dir=backend.data_dir)
    await database.start()
    try:
        return [row async for row in database.iter_audit()]
    finally:
        await database.close()


async def stored_audit(runtime: Runtime, backend: Backend) -> list[dict[str, Any]]:
    """The stored audit records."""
    return [dict(row.record) for row in await stored_rows(runtime, backend)]
