from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from agent_runtime.security.ratelimit import RateLimiter, build_rate_limiter
from agent_runtime.security.ratelimit_redis import RedisRateLimiter
from agentry_api.v1alpha1 import RateLimitSpec
from tests.services import free_port
from tests.support.clock import FakeClock

pytestmark = pytest.mark.services


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    connection = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    await connection.aclose()


def shared(client: redis.asyncio.Redis, *, rpm: int = 5, tpm: int = 1000, period: float = 60.0) -> RateLimiter:
    spec = RateLimitSpec(requests_per_minute=rpm, tokens_per_minute=tpm)
    return build_rate_limiter(spec, redis=client, prefix="agentry:team-a:support:ratelimit:", period=period)


async def test_a_limit_holds_across_two_limiters_sharing_redis(redis_url: str, client: redis.asyncio.Redis) -> None:
    other_client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        first, second = shared(client, rpm=5), shared(other_client, rpm=5)
        verdicts = [(await (first if i % 2 else second).hit_request("alice")).allowed for i in range(6)]
        assert verdicts == [True] * 5 + [False]
        refused = await first.hit_request("alice")
        assert refused.limit == "requests_per_minute"
        assert 11.9 <= refused.retry_after <= 12.1
        assert (await second.hit_request("bob")).allowed
    finally:
        await other_client.aclose()


async def test_concurrent_hits_never_exceed_the_limit(client: redis.asyncio.Redis) -> None:
    limiters = [shared(client, rpm=10) for _ in range(4)]
    decisions = await asyncio.gather(*(limiters[i % 4].hit_request("alice") for i in range(40)))
    assert sum(decision.allowed for decision in decisions) == 10


async def test_tokens_are_shared_and_expire(client: redis.asyncio.Redis) -> None:
    first, second = shared(client, tpm=100, period=1.0), shared(client, tpm=100, period=1.0)
    await first.add_tokens("alice", 150)
    assert not (await second.check_tokens("alice")).allowed
    await asyncio.sleep(0.6)
    assert (await second.check_tokens("alice")).allowed
    keys = await client.keys("agentry:team-a:support:ratelimit:tokens_per_minute:*")
    assert len(keys) == 1 and "alice" not in keys[0]
    assert 0 < await client.pttl(keys[0]) <= 2000


async def test_requests_recover_after_the_interval(client: redis.asyncio.Redis) -> None:
    limiter = shared(client, rpm=2, period=0.4)
    assert [(await limiter.hit_request("alice")).allowed for _ in range(3)] == [True, True, False]
    await asyncio.sleep(0.25)
    assert (await limiter.hit_request("alice")).allowed


async def test_unreachable_redis_falls_back_per_pod_and_recovers(redis_url: str) -> None:
    clock = FakeClock()
    dead = redis.asyncio.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2)
    spec = RateLimitSpec(requests_per_minute=2)
    limiter = build_rate_limiter(spec, redis=dead, prefix="agentry:x", clock=clock)
    assert isinstance(limiter, RedisRateLimiter) and limiter.healthy
    verdicts = [(await limiter.hit_request("alice")).allowed for _ in range(3)]
    assert verdicts == [True, True, False]
    assert not limiter.healthy
    assert limiter.last_error.startswith(("ConnectionError", "TimeoutError: no answer within 0.5s"))
    await limiter.add_tokens("alice", 10)
    assert (await limiter.check_tokens("alice")).allowed
    await dead.aclose()


async def test_redis_back_after_retry_interval(redis_url: str, client: redis.asyncio.Redis) -> None:
    clock = FakeClock()
    limiter = build_rate_limiter(RateLimitSpec(), redis=client, prefix="agentry:y", clock=clock)
    assert isinstance(limiter, RedisRateLimiter)
    limiter._redis.mark_down(ConnectionError("simulated"))
    assert not limiter.healthy
    await limiter.hit_request("alice")
    assert await client.keys("agentry:y:*") == []
    clock.advance(5)
    await limiter.hit_request("alice")
    assert limiter.healthy
    assert len(await client.keys("agentry:y:*")) == 1


async def test_only_one_probe_while_redis_is_down(client: redis.asyncio.Redis) -> None:
    clock = FakeClock()
    limiter = build_rate_limiter(RateLimitSpec(requests_per_minute=100), redis=client, prefix="agentry:z", clock=clock)
    assert isinstance(limiter, RedisRateLimiter)
    probes = 0

    async def failing(*args: object) -> list[int]:
        nonlocal probes
        probes += 1
        await asyncio.sleep(0.05)
        raise redis.ConnectionError("down")

    limiter._run = failing  # type: ignore[method-assign,assignment]
    await limiter.hit_request("alice")
    assert not limiter.healthy and probes == 1
    clock.advance(5)
    decisions = await asyncio.gather(*(limiter.hit_request("alice") for _ in range(20)))
    assert all(decision.allowed for decision in decisions)
    assert probes == 2
