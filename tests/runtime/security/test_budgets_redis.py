"""The budget ledger on a real Redis: shared by replicas, exact under concurrency, soft when Redis is down."""

from __future__ import annotations

import asyncio
import calendar
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal

import pytest
import redis.asyncio

from agent_runtime.security.budgets import Budgets, Policy, Spent, period_at, principal_hasher
from agent_runtime.security.budgets_redis import RedisLedger
from agentry_api.v1alpha1 import BudgetPeriod, BudgetsSpec
from tests.services import free_port
from tests.support.clock import FakeClock

pytestmark = pytest.mark.services

NOON = float(calendar.timegm((2026, 12, 2, 12, 0, 0)))
PERIOD = period_at(BudgetPeriod.DAILY, NOON)
PREFIX = "agentry:team-a:support:budget"


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    connection = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    await connection.delete(*(await connection.keys(f"{PREFIX}:*")) or ["-"])
    yield connection
    await connection.aclose()


def replica(client: redis.asyncio.Redis, spec: Mapping[str, object], *, clock: FakeClock | None = None) -> Budgets:
    ledger = RedisLedger(redis=client, prefix=PREFIX, clock=FakeClock())
    policy = Policy.from_spec(BudgetsSpec.model_validate(spec), None)
    return Budgets(policy=policy, ledger=ledger, key=principal_hasher(b"k" * 32), clock=clock or FakeClock(NOON))


async def test_two_replicas_share_the_spend_and_refuse_together(client: redis.asyncio.Redis) -> None:
    spec = {"perPrincipal": {"tokens": 100}, "perAgent": {"tokens": 1000}}
    first, second = replica(client, spec), replica(client, spec)
    await first.charge("alice", tokens=70, cost=Decimal(0))
    crossed = await second.charge("alice", tokens=15, cost=Decimal(0))
    assert [(c.limit.scope, c.level) for c in crossed] == [("principal", "warn")]
    assert (await first.check("alice")).allowed
    await first.charge("alice", tokens=20, cost=Decimal(0))
    assert not (await second.check("alice")).allowed
    assert (await second.check("bob")).allowed
    report = await second.report()
    assert (report.tokens, report.shared, report.budget_percent) == (105, True, 10.5)


async def test_concurrent_charges_add_up_exactly_and_one_replica_sees_each_crossing(
    client: redis.asyncio.Redis,
) -> None:
    spec = {"perAgent": {"tokens": 1000}, "warnAtPercent": 50}
    replicas = [replica(client, spec) for _ in range(4)]
    crossings = await asyncio.gather(*(replicas[i % 4].charge(f"p{i}", tokens=10, cost=Decimal(0)) for i in range(120)))
    assert (await replicas[0].report()).tokens == 1200
    levels = sorted(c.level for found in crossings for c in found)
    assert levels == ["exhausted", "warn"]


async def test_keys_hold_no_identity_and_expire_after_the_period(client: redis.asyncio.Redis) -> None:
    budgets = replica(client, {"perPrincipal": {"tokens": 10}})
    await budgets.charge("alice@example.com", tokens=3, cost=Decimal("0.000000004"))
    keys = sorted(str(key) for key in await client.keys(f"{PREFIX}:*"))
    assert keys[0] == f"{PREFIX}:2026-12-02:agent"
    assert keys[1].startswith(f"{PREFIX}:2026-12-02:principal:") and "alice" not in keys[1]
    assert await client.hgetall(keys[0]) == {"t": "3", "c": "4"}
    assert await client.expiretime(keys[0]) == int(PERIOD.resets_at) + 2 * 86_400


async def test_amounts_beyond_double_precision_stay_exact(client: redis.asyncio.Redis) -> None:
    ledger = RedisLedger(redis=client, prefix=PREFIX, clock=FakeClock())
    big = 2**53 + 1
    agent, _ = await ledger.charge(PERIOD, None, Spent(big, big))
    assert agent == Spent(big, big)
    assert (await ledger.spent(PERIOD, None))[0] == Spent(big, big)


async def test_a_moved_clock_starts_a_new_day_on_every_replica(client: redis.asyncio.Redis) -> None:
    clock = FakeClock(NOON)
    first, second = (replica(client, {"perAgent": {"tokens": 50}}, clock=clock) for _ in range(2))
    await first.charge("alice", tokens=60, cost=Decimal(0))
    assert not (await second.check("bob")).allowed
    clock.now = PERIOD.resets_at
    assert (await second.check("bob")).allowed
    assert (await first.report()).period == "2026-12-03"


async def test_redis_down_counts_here_and_adds_it_to_redis_once_back(client: redis.asyncio.Redis) -> None:
    soft_clock = FakeClock()
    ledger = RedisLedger(redis=client, prefix=PREFIX, clock=soft_clock)
    await ledger.charge(PERIOD, "p1", Spent(40))
    ledger.redis.mark_down(ConnectionError("simulated"))
    assert not ledger.healthy
    agent, principal = await ledger.charge(PERIOD, "p1", Spent(25))
    assert (agent, principal) == (Spent(65), Spent(65))  # the last shared totals plus what this pod charged
    assert await client.hget(ledger.key(PERIOD, None), "t") == "40"
    assert ledger.pending == 2
    soft_clock.advance(5)
    agent, _ = await ledger.spent(PERIOD, None)
    assert ledger.healthy and ledger.pending == 0
    assert await client.hget(ledger.key(PERIOD, None), "t") == "65"
    assert await client.hget(ledger.key(PERIOD, "p1"), "t") == "65"
    assert (await ledger.spent(PERIOD, "p1")) == (Spent(65), Spent(65))


async def test_an_unreachable_redis_never_raises_and_says_why() -> None:
    dead = redis.asyncio.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2)
    ledger = RedisLedger(redis=dead, prefix=PREFIX, clock=FakeClock())
    assert await ledger.charge(PERIOD, None, Spent(5)) == (Spent(5), None)
    assert not ledger.healthy
    assert ledger.redis.last_error.startswith(("ConnectionError", "TimeoutError: no answer within 0.5s"))
    await dead.aclose()
