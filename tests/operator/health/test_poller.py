"""The poller against real HTTP servers on loopback: answers, slow pods, refusals, junk."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from agent_operator.health.policy import PodState
from agent_operator.health.poller import MAX_BODY_BYTES, PodTarget, Poller
from agentry_api.v1alpha1 import HealthSpec
from tests.operator.health.reports import dependency, report_body
from tests.operator.health.servers import Handler, serving

HEALTH = HealthSpec(timeout_seconds=0.5)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[int]]]:
    async with serving() as servers:
        yield servers.start


@pytest.fixture
async def poller() -> AsyncIterator[Poller]:
    async with aiohttp.ClientSession() as session:
        yield Poller(session=session, max_concurrent=4, clock=time.time)


async def _healthy(_: web.Request) -> web.Response:
    return web.json_response(report_body(inFlight=3, queued=0, latencyMs={"p50": 8, "p95": 12, "p99": 20}))


async def _slow(_: web.Request) -> web.Response:
    await asyncio.sleep(1)
    return web.json_response(report_body())


async def _unhealthy(_: web.Request) -> web.Response:
    body = report_body(status="unhealthy", dependencies=[dependency("database", "down")])
    return web.json_response(body, status=503)


async def _junk(_: web.Request) -> web.Response:
    return web.Response(text="<html>not a runtime</html>")


async def _huge(_: web.Request) -> web.Response:
    return web.Response(text=json.dumps(report_body(pad="x" * MAX_BODY_BYTES)))


async def test_poll_all_classifies_each_pod(serve: Callable[[Handler], Awaitable[int]], poller: Poller) -> None:
    ports = [await serve(handler) for handler in (_healthy, _slow, _unhealthy, _junk, _huge)]
    names = ["healthy", "slow", "unhealthy", "junk", "huge"]
    targets = [PodTarget(name, "127.0.0.1", port) for name, port in zip(names, ports, strict=True)]
    targets.append(PodTarget("refused", "127.0.0.1", 1))
    started = time.monotonic()
    polls = await poller.poll_all(targets, health=HEALTH)
    assert time.monotonic() - started < 1.5, "polls must run concurrently and time out"
    assert polls["healthy"].state == PodState.HEALTHY and polls["healthy"].in_flight == 3
    assert polls["slow"].state == PodState.UNREACHABLE and "timed out" in polls["slow"].reason
    assert polls["unhealthy"].state == PodState.UNHEALTHY and "database: down" in polls["unhealthy"].reason
    assert polls["junk"].state == PodState.UNREACHABLE and "without a JSON" in polls["junk"].reason
    assert polls["huge"].state == PodState.UNREACHABLE and "larger than" in polls["huge"].reason
    assert polls["refused"].state == PodState.UNREACHABLE


async def test_global_cap_bounds_concurrency(serve: Callable[[Handler], Awaitable[int]]) -> None:
    active = peak = 0

    async def counting(_: web.Request) -> web.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.05)
        active -= 1
        return web.json_response(report_body())

    port = await serve(counting)
    async with aiohttp.ClientSession() as session:
        capped = Poller(session=session, max_concurrent=3, clock=time.time)
        polls = await capped.poll_all([PodTarget(f"p{i}", "127.0.0.1", port) for i in range(12)], health=HEALTH)
    assert len(polls) == 12 and all(poll.state == PodState.HEALTHY for poll in polls.values())
    assert peak == 3


async def test_json_that_is_not_the_report_is_unhealthy_and_a_non_object_unreachable(
    serve: Callable[[Handler], Awaitable[int]], poller: Poller
) -> None:
    async def partial(_: web.Request) -> web.Response:
        return web.json_response({"status": "healthy", "inFlight": 3})

    async def listing(_: web.Request) -> web.Response:
        return web.json_response([report_body()])

    targets = [PodTarget(name, "127.0.0.1", await serve(handler)) for name, handler in (("p", partial), ("l", listing))]
    polls = await poller.poll_all(targets, health=HEALTH)
    assert polls["p"].state == PodState.UNHEALTHY
    assert polls["p"].reason == "health answer does not match the runtime's report: reasons: Field required"
    assert polls["l"].state == PodState.UNREACHABLE and "not an object" in polls["l"].reason
