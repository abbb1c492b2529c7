"""Admission: concurrency slots, a bounded queue, refusals with Retry-After, draining."""

from __future__ import annotations

import asyncio

import pytest

from agent_runtime.admission import Admission, retry_after_seconds
from agent_runtime.errors import ApiError


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
