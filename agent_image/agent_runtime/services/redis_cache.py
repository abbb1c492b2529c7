"""The Redis cache: shared by every replica, and the store behind the shared rate limits."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from .protocols import ServiceHealth
from .traced import Traceable, traced


class RedisCache(Traceable):
    """Keys live under `prefix` so agents sharing one Redis never see each other's entries."""

    system = "redis"

    name = "cache"

    def __init__(self, *, url: str, prefix: str, default_ttl_seconds: float = 300.0, timeout: float = 5.0) -> None:
        self.prefix = prefix
        self.default_ttl_seconds = default_ttl_seconds
        self._url = url
        self._timeout = timeout
        self._client: aioredis.Redis | None = None

    @property
    def client(self) -> aioredis.Redis:
        """The connected client (the rate limiter shares it); raises before start()."""
        if self._client is None:
            raise RuntimeError("Redis cache used before start()")
        return self._client

    async def start(self) -> None:
        """Connect and PING, so a wrong URL or password fails the start-up with Redis's own message."""
        self._client = aioredis.Redis.from_url(
            self._url, decode_responses=True, socket_timeout=self._timeout, socket_connect_timeout=self._timeout
        )
        try:
            await self._client.ping()
        except Exception as exc:
            await self.close()
            raise RuntimeError(f"cannot reach Redis: {exc}") from exc

    async def close(self) -> None:
        """Close the connection pool; safe to call twice."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def check(self) -> ServiceHealth:
        """PING round trip; never raises."""
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self.client.ping(), timeout=self._timeout)
        except Exception as exc:
            return ServiceHealth(name=self.name, state="down", detail=f"redis: {type(exc).__name__}: {exc}")
        latency = (time.perf_counter() - started) * 1000
        return ServiceHealth(name=self.name, state="ok", detail="redis", latency_ms=latency)

    @traced("get")
    async def get(self, key: str) -> str | None:
        """The value, or None when absent or expired (Redis expires keys itself)."""
        value = await self.client.get(self.prefix + key)
        return None if value is None else str(value)

    @traced("set")
    async def set(self, key: str, value: str, *, ttl_seconds: float | None = None) -> None:
        """Store value with a TTL in milliseconds, so fractional TTLs are honoured."""
        ttl = self.default_ttl_seconds if ttl_seconds is None else ttl_seconds
        await self.client.set(self.prefix + key, value, px=max(1, int(ttl * 1000)))

    @traced("invalidate")
    async def invalidate(self, pattern: str) -> int:
        """Delete matching keys found by SCAN (never KEYS, which blocks Redis); return how many."""
        deleted = 0
        batch: list[str] = []
        async for key in self.client.scan_iter(match=self.prefix + pattern, count=500):
            batch.append(str(key))
            if len(batch) >= 500:
                deleted += int(await self.client.delete(*batch))
                batch = []
        if batch:
            deleted += int(await self.client.delete(*batch))
        return deleted
