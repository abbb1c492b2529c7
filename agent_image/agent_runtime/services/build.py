"""Choose each service's implementation from the spec: PostgreSQL or SQLite, Redis or in-process."""

from __future__ import annotations

from pathlib import Path

from ..config import RuntimeConfig
from .breaker import CircuitBreaker
from .container import Services
from .http import ExternalApi
from .memory_cache import MemoryCache
from .postgres import PostgresDatabase
from .protocols import Cache, Database
from .redis_cache import RedisCache
from .sqlite import SqliteDatabase

#: File name of the SQLite database under the data directory.
SQLITE_FILE = "agentry.db"


def build_services(*, config: RuntimeConfig, data_dir: str | Path) -> Services:
    """The services the spec asks for; secrets were resolved by the config loader already."""
    return Services(
        database=build_database(config=config, data_dir=data_dir),
        cache=build_cache(config=config),
        external_api=build_external_api(config=config),
    )


def build_database(*, config: RuntimeConfig, data_dir: str | Path) -> Database:
    """PostgreSQL when the spec gives a URL Secret, SQLite on the pod's volume otherwise."""
    spec = config.spec.services.database
    url = config.secret("spec.services.database.urlSecretRef")
    if spec is not None and url is not None:
        return PostgresDatabase(url=url, pool_size=spec.pool_size)
    return SqliteDatabase(path=Path(data_dir) / SQLITE_FILE)


def build_cache(*, config: RuntimeConfig) -> Cache:
    """Redis when the spec gives a URL Secret, the in-process LRU cache otherwise."""
    spec = config.spec.services.cache
    url = config.secret("spec.services.cache.urlSecretRef")
    if spec is not None and url is not None:
        prefix = f"agentry:{config.namespace}:{config.name}:"
        return RedisCache(url=url, prefix=prefix, default_ttl_seconds=spec.default_ttl_seconds)
    return MemoryCache()


def build_external_api(*, config: RuntimeConfig) -> ExternalApi | None:
    """The external API client with its circuit breaker, or None when the spec names no API."""
    spec = config.spec.services.external_api
    if spec is None:
        return None
    breaker = CircuitBreaker(
        name=ExternalApi.name,
        failure_threshold=spec.circuit_breaker.failure_threshold,
        reset_timeout=spec.circuit_breaker.reset_timeout_seconds,
    )
    return ExternalApi(
        base_url=spec.base_url,
        timeout=spec.timeout_seconds,
        max_retries=spec.max_retries,
        breaker=breaker,
        api_key=config.secret("spec.services.externalAPI.apiKeySecretRef"),
    )
