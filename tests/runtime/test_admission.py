"""Admission: concurrency slots, a bounded queue, refusals with Retry-After, draining; then on a real server."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from agent_runtime.admission import Admission, retry_after_seconds
from agent_runtime.errors import ApiError

from .harness import Backend, auth, serving, wait_for_load
from .models import echo_model


async def hold(admission: Admission, release: asyncio.Event, **kwargs: bool) -> None:
    async with admission.slot(**kwargs):
        await release.wait()


async def test_slots_then_queue_then_refusal() -> None:
    admission = Admission(max_concurrent=2, max_queued=1)
    release = asyncio.Event()
    tasks = [asyncio.create_task(hold(admission, release)) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert (admission.in_flight, admission.queued) == (2, 1)
    with pytest.raises(ApiError) as refused:
        async with admission.slot():
            pass
    assert (refused.value.status, refused.value.kind) == (429, "overloaded")
    assert refused.value.retry_after is not None and refused.value.retry_after >= 1
    release.set()
    await asyncio.gather(*tasks)
    assert (admission.in_flight, admission.queued) == (0, 0)


async def test_batch_items_wait_instead_of_being_refused() -> None:
    admission = Admission(max_concurrent=1, max_queued=0)
    release = asyncio.Event()
    tasks = [asyncio.create_task(hold(admission, release, bypass_queue_limit=True)) for _ in range(4)]
    await asyncio.sleep(0.01)
    assert (admission.in_flight, admission.queued) == (1, 3)
    release.set()
    await asyncio.gather(*tasks)


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    admission = Admission(max_concurrent=1, max_queued=5)
    release = asyncio.Event()
    holder = asyncio.create_task(hold(admission, release))
    await asyncio.sleep(0.01)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await hold(admission, release)
    assert (admission.in_flight, admission.queued) == (1, 0)
    release.set()
    await holder


def test_draining_refuses_with_503() -> None:
    admission = Admission(max_concurrent=1, max_queued=1)
    admission.draining = True
    with pytest.raises(ApiError) as refused:
        admission.check_open()
    assert (refused.value.status, refused.value.kind) == (503, "draining")


@pytest.mark.parametrize(
    ("queued", "latency", "expected"), [(0, 100, 1.0), (9, 1000, 5.0), (3, 4000, 8.0), (0, 0, 1.0)]
)
def test_retry_after_estimate(queued: int, latency: float, expected: float) -> None:
    assert retry_after_seconds(queued=queued, max_concurrent=2, typical_latency_ms=latency) == expected


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
