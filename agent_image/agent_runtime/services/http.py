"""The external API client: httpx with timeouts, retries with backoff and jitter, and a circuit breaker."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from .breaker import CircuitBreaker
from .protocols import ServiceHealth

Sleep = Callable[[float], Awaitable[None]]


class ExternalApiError(Exception):
    """A call that failed after its retries; `status` is the last HTTP status, None for transport errors."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)].

    Jitter spreads the retries of many pods that failed at the same moment, so they do not hit the
    recovering API in lockstep.
    """
    return rng.uniform(0.0, min(cap, base * (2**attempt)))


class ExternalApi:
    """An HTTP API the agent's tools call; the breaker's state shows in /health and /metrics."""

    name = "externalAPI"

    def __init__(
        self,
        *,
        base_url: str,
        timeout: float,
        max_retries: int,
        breaker: CircuitBreaker,
        api_key: str | None = None,
        backoff_base: float = 0.2,
        backoff_cap: float = 5.0,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self.breaker = breaker
        self._api_key = api_key
        self._backoff = (backoff_base, backoff_cap)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def wrap_transport(
        self, wrap: Callable[[httpx.AsyncBaseTransport | None], httpx.AsyncBaseTransport | None]
    ) -> None:
        """Put `wrap` around the transport (the runtime's tracing); before start."""
        self._transport = wrap(self._transport)

    async def start(self) -> None:
        """Open the connection pool; no request is made, the API may legitimately be down at start-up."""
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        self._client = httpx.AsyncClient(
            base_url=self.base_url, timeout=self.timeout, headers=headers, transport=self._transport
        )

    async def close(self) -> None:
        """Close the pool; safe to call twice."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def check(self) -> ServiceHealth:
        """The breaker's view, without a request: an open circuit is degraded (the API is optional)."""
        state = self.breaker.state
        detail = f"circuit {state}, {self.breaker.failures} consecutive failures"
        return ServiceHealth(name=self.name, state="ok" if state == "closed" else "degraded", detail=detail)

    async def request(self, method: str, path: str, *, json: Any = None) -> httpx.Response:
        """One call with retries on connection errors, timeouts and 5xx; 4xx is returned, not retried.

        Raises CircuitOpenError without calling when the circuit is open, ExternalApiError when the
        retries are spent.
        """
        if self._client is None:
            raise RuntimeError("external API client used before start()")
        error = ExternalApiError(f"{method} {path}: not attempted")
        for attempt in range(self.max_retries + 1):
            if attempt:
                base, cap = self._backoff
                await self._sleep(backoff_delay(attempt - 1, base=base, cap=cap, rng=self._rng))
            self.breaker.before_call()
            outcome = await self._attempt(self._client, method, path, json)
            if isinstance(outcome, httpx.Response):
                return outcome
            error = outcome
        raise error

    async def _attempt(
        self, client: httpx.AsyncClient, method: str, path: str, json: Any
    ) -> httpx.Response | ExternalApiError:
        try:
            response = await client.request(method, path, json=json)
        except httpx.TransportError as exc:
            self.breaker.record_failure()
            return ExternalApiError(f"{method} {path}: {type(exc).__name__}")
        if response.status_code >= 500:
            self.breaker.record_failure()
            return ExternalApiError(f"{method} {path}: HTTP {response.status_code}", status=response.status_code)
        self.breaker.record_success()
        return response
