"""An external API that times out opens the circuit breaker, and /health and /metrics say so."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .harness import Backend, auth, serving
from .models import tool_then_text
from .servers import serve_in_thread
from .upstream import Script, upstream_app


@pytest.fixture
def slow_upstream() -> Iterator[str]:
    with serve_in_thread(upstream_app(Script(delay=1.0))) as url:
        yield url


async def test_timeouts_open_the_breaker_and_health_is_degraded(runtime_backend: Backend, slow_upstream: str) -> None:
    spec = {
        "services": {
            "externalAPI": {
                "baseURL": slow_upstream,
                # Well under the upstream's 1 s, so the read times out; not so short that connecting to it on
                # loopback can miss it on a loaded CI machine (0.1 s once gave a ConnectTimeout there).
                "timeoutSeconds": 0.4,
                "maxRetries": 0,
                "circuitBreaker": {"failureThreshold": 2, "resetTimeoutSeconds": 60},
            }
        }
    }
    runtime = runtime_backend.runtime(spec, model=tool_then_text("call_external_api", {"path": "/orders/1"}))
    with serving(runtime) as url:
        answers = [httpx.post(f"{url}/v1/run", json={"prompt": "x"}, headers=auth(), timeout=10) for _ in range(3)]
        health = httpx.get(f"{url}/health")
        metrics = httpx.get(f"{url}/metrics").text
    outputs = [a.json()["output"] for a in answers]
    assert all(a.status_code == 200 for a in answers)  # the tool reports the failure to the model
    assert "ReadTimeout" in outputs[0]
    assert "circuit open" in outputs[2]
    report = health.json()
    assert health.status_code == 200
    assert report["status"] == "degraded"
    assert report["circuitBreakers"] == [{"name": "externalAPI", "state": "open", "failures": 2}]
    [api] = [d for d in report["dependencies"] if d["name"] == "externalAPI"]
    assert api["state"] == "degraded"
    assert 'agentry_circuit_breaker_state{name="externalAPI"} 2.0' in metrics
