from __future__ import annotations

import pytest

from agent_runtime.security.ratelimit import InProcessRateLimiter, RateDecision, build_rate_limiter, rates_for
from agentry_api.v1alpha1 import RateLimitSpec
from tests.support.clock import FakeClock


def limiter(clock: FakeClock, *, rpm: int = 3, tpm: int = 1000, max_subjects: int = 1000) -> InProcessRateLimiter:
    spec = RateLimitSpec(requests_per_minute=rpm, tokens_per_minute=tpm)
    return InProcessRateLimiter(rates=rates_for(spec), clock=clock, max_subjects=max_subjects)


async def test_requests_per_minute_per_principal() -> None:
    clock = FakeClock()
    rl = limiter(clock, rpm=3)
    assert [(await rl.hit_request("alice")).allowed for _ in range(4)] == [True, True, True, False]
    assert (await rl.hit_request("bob")).allowed
    refused = await rl.hit_request("alice")
    assert refused == RateDecision(allowed=False, retry_after=refused.retry_after, limit="requests_per_minute")
    assert refused.retry_after == pytest.approx(20.0)


async def test_requests_recover_with_time() -> None:
    clock = FakeClock()
    rl = limiter(clock, rpm=3)
    for _ in range(3):
        await rl.hit_request("alice")
    clock.advance(19.9)
    assert not (await rl.hit_request("alice")).allowed
    clock.advance(0.1)
    assert (await rl.hit_request("alice")).allowed
    clock.advance(60)
    assert [(await rl.hit_request("alice")).allowed for _ in range(4)] == [True, True, True, False]


async def test_tokens_are_charged_after_the_run() -> None:
    clock = FakeClock()
    rl = limiter(clock, tpm=1000)
    assert (await rl.check_tokens("alice")).allowed
    await rl.add_tokens("alice", 1500)
    decision = await rl.check_tokens("alice")
    assert decision.limit == "tokens_per_minute" and not decision.allowed
    assert decision.retry_after == pytest.approx(30.06)
    assert (await rl.check_tokens("bob")).allowed
    clock.advance(30.06)
    assert (await rl.check_tokens("alice")).allowed


@pytest.mark.parametrize("tokens", [0, -5])
async def test_no_tokens_charge_nothing(tokens: int) -> None:
    rl = limiter(FakeClock())
    await rl.add_tokens("alice", tokens)
    assert len(rl) == 0


async def test_idle_principals_are_evicted() -> None:
    clock = FakeClock()
    rl = limiter(clock)
    for index in range(50):
        await rl.hit_request(f"user-{index}")
    assert len(rl) == 50
    clock.advance(61)
    await rl.hit_request("fresh")
    assert len(rl) == 1


async def test_memory_is_bounded_by_max_subjects() -> None:
    rl = limiter(FakeClock(), rpm=1, max_subjects=10)
    for index in range(100):
        await rl.hit_request(f"user-{index}")
    assert len(rl) == 10
    assert not (await rl.hit_request("user-99")).allowed


def test_build_without_redis_is_in_process_and_healthy() -> None:
    built = build_rate_limiter(RateLimitSpec(), redis=None, prefix="agentry:default:a")
    assert isinstance(built, InProcessRateLimiter)
    assert built.healthy
