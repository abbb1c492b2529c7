"""Fixtures of the runtime tests: each service in its in-process and its real implementation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent_runtime.services.memory_cache import MemoryCache
from agent_runtime.services.postgres import PostgresDatabase
from agent_runtime.services.protocols import Cache, Database
from agent_runtime.services.redis_cache import RedisCache
from agent_runtime.services.sqlite import SqliteDatabase

from .harness import Backend

BACKENDS = ["in-process", pytest.param("real", marks=pytest.mark.services)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """`in-process` (SQLite, memory cache) or `real` (PostgreSQL, Redis, started by tests.services)."""
    return str(request.param)


@pytest.fixture
async def database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Database]:
    """A started database: SQLite in tmp_path, or a fresh PostgreSQL database."""
    db: Database
    if backend == "real":
        db = PostgresDatabase(url=request.getfixturevalue("postgres_url"))
    else:
        db = SqliteDatabase(path=tmp_path / "agentry.db")
    await db.start()
    yield db
    await db.close()


@pytest.fixture
async def cache(backend: str, request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    """A started cache: in-process, or the session's Redis (emptied)."""
    c: Cache
    if backend == "real":
        c = RedisCache(url=request.getfixturevalue("redis_url"), prefix="agentry:test:agent:")
    else:
        c = MemoryCache()
    await c.start()
    yield c
    await c.close()


@pytest.fixture
def runtime_backend(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Backend:
    """Where the runtime under test keeps its state: SQLite and memory, or PostgreSQL and Redis."""
    if backend == "real":
        return Backend(
            data_dir=tmp_path,
            postgres_url=request.getfixturevalue("postgres_url"),
            redis_url=request.getfixturevalue("redis_url"),
        )
    return Backend(data_dir=tmp_path)
