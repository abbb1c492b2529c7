"""The verified-token cache: remembered until exp or max_age, bounded, never for failures."""

from __future__ import annotations

from agent_runtime.security.auth import Principal
from agent_runtime.security.token_cache import VerifiedTokens, token_expiry
from tests.runtime.harness import token
from tests.support.clock import FakeClock

ALICE = Principal(subject="alice", roles=frozenset({"agent_operator"}))


def bearer(ttl: int, now: float, subject: str = "alice") -> str:
    return "Bearer " + token(subject=subject, ttl_seconds=ttl, clock=lambda: now)


def test_expiry_is_read_from_the_payload() -> None:
    assert token_expiry(bearer(100, 1_000)) == 1_100
    assert token_expiry("Bearer not-a-jwt") is None
    assert token_expiry("Bearer a.b.c") is None


def test_remembered_until_the_earlier_of_exp_and_max_age() -> None:
    clock = FakeClock(1_000)
    cache = VerifiedTokens(max_age=60, clock=clock)
    short, long = bearer(10, 1_000), bearer(3_600, 1_000, subject="bob")
    cache.put(short, ALICE)
    cache.put(long, ALICE)
    clock.now = 1_009
    assert cache.get(short) is ALICE
    clock.now = 1_010
    assert cache.get(short) is None  # exp reached, no leeway
    assert cache.get(long) is ALICE
    clock.now = 1_060
    assert cache.get(long) is None  # max_age reached


def test_bounded_lru() -> None:
    cache = VerifiedTokens(capacity=2, clock=FakeClock(1_000))
    headers = [bearer(100, 1_000, subject=s) for s in ("a", "b", "c")]
    cache.put(headers[0], ALICE)
    cache.put(headers[1], ALICE)
    assert cache.get(headers[0]) is ALICE
    cache.put(headers[2], ALICE)
    assert cache.get(headers[1]) is None
    assert cache.get(headers[0]) is ALICE
