"""The external API client against a real stand-in server: retries, backoff, timeouts, circuit breaker."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest

from agent_runtime.services.breaker import CircuitBreaker, CircuitOpenError
from agent_runtime.services.http import ExternalApi, ExternalApiError, backoff_delay

from .servers import serve_in_thread
from .upstream import Script, upstream_app


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def base_url(script: Script) -> Iterator[str]:
    with serve_in_thread(upstream_app(script)) as url:
        yield url


def make_api(base_url: str, *, timeout: float = 2.0, retries: int = 2, threshold: int = 5) -> ExternalApi:
    sleeps: list[float] = []

    async def no_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    breaker = CircuitBreaker(name="externalAPI", failure_threshold=threshold, reset_timeout=60)
    return ExternalApi(base_url=base_url, timeout=timeout, max_retries=retries, breaker=breaker, sleep=no_sleep)


@asynccontextmanager
async def started(api: ExternalApi) -> AsyncIterator[ExternalApi]:
    """The client started for the block and closed after it, whatever the block raised."""
    await api.start()
    try:
        yield api
    finally:
        await api.close()


async def test_retries_5xx_then_succeeds(base_url: str, script: Script) -> None:
    script.failures = 2
    async with started(make_api(base_url)) as api:
        response = await api.request("GET", "/items/1")
    assert response.json() == {"path": "/items/1", "ok": True}
    assert len(script.calls) == 3
    assert api.breaker.state == "closed"


async def test_4xx_is_returned_not_retried(base_url: str, script: Script) -> None:
    async with started(make_api(base_url)) as api:
        response = await api.request("GET", "/status/404")
    assert response.status_code == 404
    assert len(script.calls) == 1


async def test_timeouts_open_the_circuit_then_calls_fail_fast(base_url: str, script: Script) -> None:
    script.delay = 0.5
    async with started(make_api(base_url, timeout=0.1, retries=1, threshold=2)) as api:
        with pytest.raises(ExternalApiError, match="ReadTimeout"):
            await api.request("GET", "/slow")
        assert api.breaker.state == "open"
        assert (await api.check()).state == "degraded"
        with pytest.raises(CircuitOpenError):
            await api.request("GET", "/slow")
    assert len(script.calls) == 2


async def test_connection_refused_is_an_error_after_retries() -> None:
    async with started(make_api("http://127.0.0.1:9", retries=2)) as api:
        with pytest.raises(ExternalApiError, match="ConnectError"):
            await api.request("GET", "/")
    assert api.breaker.failures == 3


@pytest.mark.parametrize("attempt", [0, 1, 2, 3, 10])
def test_backoff_is_jittered_and_capped(attempt: int) -> None:
    rng = random.Random(7)
    delays = [backoff_delay(attempt, base=0.2, cap=5.0, rng=rng) for _ in range(200)]
    ceiling = min(5.0, 0.2 * 2**attempt)
    assert all(0 <= d <= ceiling for d in delays)
    assert max(delays) > ceiling * 0.8  # spread over the range, not a fixed value
