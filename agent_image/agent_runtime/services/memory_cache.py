"""The in-process cache: a bounded LRU dict with TTLs, used when the spec names no Redis."""

from __future__ import annotations

import fnmatch
import time
from collections import OrderedDict
from collections.abc import Callable

from .protocols import ServiceHealth


class MemoryCache:
    """Per-pod cache; entries expire after their TTL and the least recently used go first when full.

    Expired entries are dropped when read or when they reach the LRU end, so the size bound holds
    without a sweeper task.
    """

    name = "cache"

    def __init__(
        self,
        *,
        default_ttl_seconds: float = 300.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.default_ttl_seconds = default_ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()

    async def start(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Drop every entry."""
        self._entries.clear()

    async def check(self) -> ServiceHealth:
        """Always ok: it lives in this process."""
        return ServiceHealth(name=self.name, state="ok", detail=f"in-process, {len(self._entries)} entries")

    async def get(self, key: str) -> str | None:
        """The value, or None when absent or expired; a hit becomes the most recently used."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: str, *, ttl_seconds: float | None = None) -> None:
        """Store value; evict the least recently used entries beyond max_entries."""
        ttl = self.default_ttl_seconds if ttl_seconds is None else ttl_seconds
        self._entries[key] = (value, self._clock() + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def invalidate(self, pattern: str) -> int:
        """Delete keys matching the glob pattern; return how many were deleted."""
        doomed = [key for key in self._entries if fnmatch.fnmatchcase(key, pattern)]
        for key in doomed:
            del self._entries[key]
        return len(doomed)

    def __len__(self) -> int:
        return len(self._entries)
