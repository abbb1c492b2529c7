"""The budget ledger shared by every replica of an agent through Redis.

One hash per scope and period (`<prefix>:<period>:agent`, `<prefix>:<period>:principal:<key>`) holds `t`
(tokens) and `c` (billionths of the currency), added with HINCRBY, so concurrent charges from any replica
add up exactly; each hash expires two days after its period ends. A charge and the read of the totals after
it are one Lua script, so every replica sees the totals its own charge produced and exactly one replica sees
a budget cross its warning level. Totals travel as strings: Lua numbers are doubles, exact only to 2^53.

Redis unreachable (soft_redis.py): spend is decided from the totals last read from Redis plus what this
process charged since, and those charges are kept and added to Redis once it answers again, so an outage
loses no spend. `healthy` is False meanwhile, for /health.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import redis.asyncio
from redis.exceptions import RedisError

from .budgets import DEFAULT_MAX_SUBJECTS, Period, Spent
from .soft_redis import DEFAULT_RETRY_INTERVAL, DEFAULT_TIMEOUT, SoftRedis

#: KEYS: the hashes to charge. ARGV: tokens, nanos, expire-at (epoch seconds). Returns t, c of each, as strings.
CHARGE_SCRIPT = """
local out = {}
for _, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 't', ARGV[1])
  redis.call('HINCRBY', key, 'c', ARGV[2])
  redis.call('EXPIREAT', key, ARGV[3])
  local v = redis.call('HMGET', key, 't', 'c')
  out[#out + 1] = v[1]
  out[#out + 1] = v[2]
end
return out
"""
#: KEYS: the hashes to read. Returns t, c of each, as strings ('0' for a hash that does not exist).
READ_SCRIPT = """
local out = {}
for _, key in ipairs(KEYS) do
  local v = redis.call('HMGET', key, 't', 'c')
  out[#out + 1] = v[1] or '0'
  out[#out + 1] = v[2] or '0'
end
return out
"""
#: Seconds a period's hashes outlive it (a charge in flight at the reset still lands somewhere readable).
KEEP_AFTER_RESET = 2 * 86_400
AGENT = "agent"


class RedisLedger:
    """Spend under `prefix` (the agent's, e.g. `agentry:<ns>:<name>:budget`), shared by the replicas."""

    def __init__(
        self,
        *,
        redis: redis.asyncio.Redis,
        prefix: str,
        clock: Callable[[], float],
        timeout: float = DEFAULT_TIMEOUT,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        max_subjects: int = DEFAULT_MAX_SUBJECTS,
    ) -> None:
        self._charge = redis.register_script(CHARGE_SCRIPT)
        self._read = redis.register_script(READ_SCRIPT)
        self._prefix = prefix.rstrip(":")
        self.redis = SoftRedis(
            what="budgets",
            fallback="budgets now count this pod's spend on top of the last shared totals",
            clock=clock,
            timeout=timeout,
            retry_interval=retry_interval,
        )
        self.redis.recovered = self._sync
        self._known: OrderedDict[str, Spent] = OrderedDict()
        """The totals last read from Redis, by key (what the fallback starts from)."""
        self._pending: OrderedDict[str, tuple[Period, Spent]] = OrderedDict()
        """Charges made while Redis was down, by key, to be added once it is back."""
        self._max_subjects = max_subjects

    @property
    def healthy(self) -> bool:
        """False while Redis is down and charges wait in this process."""
        return self.redis.healthy

    @property
    def shared(self) -> bool:
        """Yes: every replica charges the same hashes."""
        return True

    @property
    def pending(self) -> int:
        """Keys with charges not yet in Redis."""
        return len(self._pending)

    def key(self, period: Period, principal: str | None) -> str:
        """The hash of the agent (principal None) or of a principal's key in `period`."""
        scope = AGENT if principal is None else f"principal:{principal}"
        return f"{self._prefix}:{period.name}:{scope}"

    async def spent(self, period: Period, principal: str | None) -> tuple[Spent, Spent | None]:
        """The totals of the agent and the principal in `period`."""
        keys = self._keys(period, principal)
        result = await self.redis.call(lambda: self._read(keys=keys))
        return self._totals(keys, result, principal)

    async def charge(self, period: Period, principal: str | None, amount: Spent) -> tuple[Spent, Spent | None]:
        """Add `amount` to both; kept here for later when Redis is down."""
        keys = self._keys(period, principal)
        args = [amount.tokens, amount.nanos, int(period.resets_at) + KEEP_AFTER_RESET]
        result = await self.redis.call(lambda: self._charge(keys=keys, args=args))
        if result is None:
            for key in keys:
                self._add_pending(key, period, amount)
        return self._totals(keys, result, principal)

    def _keys(self, period: Period, principal: str | None) -> list[str]:
        keys = [self.key(period, None)]
        if principal is not None:
            keys.append(self.key(period, principal))
        return keys

    def _totals(self, keys: list[str], result: list[Any] | None, principal: str | None) -> tuple[Spent, Spent | None]:
        """The totals from Redis's answer (remembered), or the last known plus pending while it is down."""
        if result is None:
            totals = [self._known.get(key, Spent()) + self._pending.get(key, (None, Spent()))[1] for key in keys]
        else:
            values = [int(value) for value in result]
            totals = [Spent(values[2 * i], values[2 * i + 1]) for i in range(len(keys))]
            for key, total in zip(keys, totals, strict=True):
                self._remember(key, total)
        return totals[0], totals[1] if principal is not None else None

    def _remember(self, key: str, total: Spent) -> None:
        self._known[key] = total
        self._known.move_to_end(key)
        while len(self._known) > self._max_subjects:
            self._known.popitem(last=False)

    def _add_pending(self, key: str, period: Period, amount: Spent) -> None:
        _, before = self._pending.pop(key, (period, Spent()))
        self._pending[key] = (period, before + amount)
        while len(self._pending) > self._max_subjects:  # bounded: the oldest principal's charges are dropped
            self._pending.popitem(last=False)

    async def _sync(self) -> None:
        """Add the charges made while Redis was down (each to its own period's hash); what fails waits again."""
        pending, self._pending = self._pending, OrderedDict()
        while pending:
            key, (period, amount) = next(iter(pending.items()))
            args = [amount.tokens, amount.nanos, int(period.resets_at) + KEEP_AFTER_RESET]
            try:
                await asyncio.wait_for(self._charge(keys=[key], args=args), timeout=self.redis.timeout)
            except (RedisError, OSError, TimeoutError) as exc:
                self.redis.mark_down(exc)
                for rest, (rest_period, rest_amount) in pending.items():
                    self._add_pending(rest, rest_period, rest_amount)
                return
            del pending[key]
            self._known.pop(key, None)  # the next read has the total with these charges
