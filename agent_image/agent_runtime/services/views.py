"""The services as a user's agent sees them: its own records and cache keys, nothing of the runtime's."""

from __future__ import annotations

from typing import Any

from .. import sdk
from .container import Services
from .protocols import Cache, Json, RecordStore

#: Prefix of the cache keys a user's tools write: the runtime's entries and the built-in tools' ("tool:") stay apart.
APP_CACHE_PREFIX = "app:"
#: Longest collection name and key, in characters (both are part of the primary key).
MAX_COLLECTION = 200
MAX_KEY = 500
#: Most records one list() returns.
MAX_LIST = 1000


class Records:
    """The database's records, with the arguments checked, so a bad one fails in the tool that passed it."""

    def __init__(self, store: RecordStore) -> None:
        self._store = store

    async def put(self, collection: str, key: str, value: Json) -> None:
        """Store `value` under `key`, replacing what was there."""
        await self._store.put(_collection(collection), _key(key), value)

    async def get(self, collection: str, key: str) -> Json:
        """The stored value, or None when there is none."""
        return await self._store.get(_collection(collection), _key(key))

    async def delete(self, collection: str, key: str) -> bool:
        """Delete the record; False when there was none."""
        return await self._store.delete(_collection(collection), _key(key))

    async def list(self, collection: str, *, prefix: str = "", limit: int = 100) -> list[tuple[str, Json]]:
        """Records whose key starts with `prefix`, in key order, at most `limit`."""
        if not 1 <= limit <= MAX_LIST:
            raise ValueError(f"limit must be between 1 and {MAX_LIST}, not {limit}")
        return await self._store.list(_collection(collection), prefix=prefix, limit=limit)


class AppCache:
    """The cache under the agent's own key prefix."""

    def __init__(self, cache: Cache) -> None:
        self._cache = cache

    async def get(self, key: str) -> str | None:
        """The value, or None when absent or expired."""
        return await self._cache.get(APP_CACHE_PREFIX + key)

    async def set(self, key: str, value: str, *, ttl_seconds: float | None = None) -> None:
        """Store `value`; None ttl means the spec's default TTL."""
        await self._cache.set(APP_CACHE_PREFIX + key, value, ttl_seconds=ttl_seconds)

    async def invalidate(self, pattern: str) -> int:
        """Delete the agent's keys matching the glob pattern."""
        return await self._cache.invalidate(APP_CACHE_PREFIX + pattern)


def agent_services(services: Services) -> sdk.Services:
    """What the user's tools get of the runtime's services."""
    return sdk.Services(
        database=Records(services.database), cache=AppCache(services.cache), external_api=services.external_api
    )


def _collection(value: Any) -> str:
    return _text("collection", value, MAX_COLLECTION)


def _key(value: Any) -> str:
    return _text("key", value, MAX_KEY)


def _text(name: str, value: Any, limit: int) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ValueError(f"{name} must be a non-empty string of at most {limit} characters")
    return value
