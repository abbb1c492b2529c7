"""Backpressure on a real server: saturation answered 429 with Retry-After, recovery, timeouts, draining."""

from __future__ import annotations

import asyncio

import httpx

from .harness import Backend, auth, serving, wait_for_load
from .models import echo_model

SMALL = {"concurrency": {"maxConcurrentRequests": 2, "maxQueuedRequests": 2, "requestTimeoutSeconds": 10}}


async def test_saturation_is_refused_with_retry_after_then_recovers(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime(SMALL, model=echo_model(delay=1.5))
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            burst = [
                asyncio.create_task(client.post("/v1/run", json={"prompt": f"p{i}"}, headers=auth())) for i in range(10)
            ]
            health = await wait_for_load(client, in_flight=2, queued=2)
            responses = await asyncio.gather(*burst)
            after = await client.post("/v1/run", json={"prompt": "again"}, headers=auth())
            metrics = (await client.get("/metrics")).text
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 4 + [429] * 6
    for refused in (r for r in responses if r.status_code == 429):
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["error"]["type"] == "overloaded"
    assert (health["inFlight"], health["queued"], health["maxConcurrent"]) == (2, 2, 2)
    assert after.status_code == 200
    assert 'agentry_requests_total{endpoint="run",status="429"} 6.0' in metrics
    assert 'agentry_errors_total{kind="overloaded"} 6.0' in metrics


async def test_a_request_over_its_timeout_is_a_504(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime({"concurrency": {"requestTimeoutSeconds": 0.3}}, model=echo_model(delay=2))
    with serving(runtime) as url:
        response = httpx.post(f"{url}/v1/run", json={"prompt": "slow"}, headers=auth(), timeout=10)
        health = httpx.get(f"{url}/health").json()
    assert response.status_code == 504
    assert response.json()["error"] == {"type": "timeout", "message": "the request did not finish within 0.3s"}
    assert health["errorRate"] == 1.0


async def test_draining_refuses_new_work_with_503_and_is_not_ready(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime()
    with serving(runtime) as url:
        assert httpx.get(f"{url}/readyz").status_code == 200
        runtime.drain()
        response = httpx.post(f"{url}/v1/run", json={"prompt": "x"}, headers=auth())
        ready = httpx.get(f"{url}/readyz")
        health = httpx.get(f"{url}/health").json()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json()["error"]["type"] == "draining"
    assert ready.status_code == 503
    assert ready.json()["draining"] is True
    assert health["draining"] is True


async def test_a_batch_larger_than_the_queue_runs_every_item(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime(SMALL, model=echo_model(delay=0.2))
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            batch = client.post(
                "/v1/run/batch", json={"items": [{"prompt": f"b{i}"} for i in range(8)]}, headers=auth()
            )
            body = (await batch).json()
    assert body["succeeded"] == 8
    assert [item["result"]["output"] for item in body["items"]] == [f"echo: b{i}" for i in range(8)]
