"""Health rounds end to end: real /health servers on loopback, a fake cluster (named as one) for the writes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from agent_operator.health.monitor import AgentMemory, run_round
from agent_operator.health.policy import PodView
from agent_operator.health.poller import Poller
from agent_operator.rollout import DeploymentView
from agentry_api.v1alpha1 import AgentDeploymentSpec
from tests.operator.health.reports import dependency, report_body
from tests.operator.health.servers import serving


@dataclass
class FakeCluster:
    """Stands in for the API server in a unit test: records deletes and scales."""

    pods_: list[PodView]
    replicas: int
    deleted: list[str] = field(default_factory=list)
    scaled: list[int] = field(default_factory=list)

    async def pods(self) -> list[PodView]:
        return [pod for pod in self.pods_ if pod.name not in self.deleted]

    async def deployment(self) -> DeploymentView:
        n = self.replicas
        return DeploymentView(desired=n, replicas=n, updated=n, ready=n)

    async def delete_pod(self, name: str) -> None:
        self.deleted.append(name)

    async def scale(self, replicas: int) -> None:
        self.scaled.append(replicas)


@dataclass
class Runtime:
    """A real HTTP server on its own loopback IP that answers /health with whatever the test sets."""

    ip: str
    body: dict[str, Any]


@pytest.fixture
async def runtimes() -> AsyncIterator[tuple[list[Runtime], int]]:
    """Three servers on 127.0.10.1-3, all on the same port, like pods on their own IPs."""
    found = [Runtime(ip=f"127.0.10.{i}", body=report_body(inFlight=1)) for i in (1, 2, 3)]
    async with serving() as servers:
        port = 0
        for runtime in found:

            async def health(_: web.Request, runtime: Runtime = runtime) -> web.Response:
                return web.json_response(runtime.body)

            port = await servers.start(health, host=runtime.ip, port=port)
        yield found, port


SPEC = AgentDeploymentSpec.model_validate(
    {
        "agent": {"model": "test"},
        "security": {"auth": {"mode": "none"}},
        "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 5, "targetInFlightPerReplica": 2},
        "health": {"failureThreshold": 2, "startupGraceSeconds": 0, "restartCooldownSeconds": 60},
    }
)


async def _rounds(cluster: FakeCluster, port: int, count: int, memory: AgentMemory) -> list[Any]:
    reports = []
    async with aiohttp.ClientSession() as session:
        poller = Poller(session=session, max_concurrent=8, clock=time.time)
        for i in range(count):
            report = await run_round(
                spec=SPEC,
                current_replicas=cluster.replicas,
                io=cluster,
                poller=poller,
                memory=memory,
                port=port,
                now=1000.0 + i * 10,
            )
            reports.append(report)
    return reports


def _cluster(runtimes: list[Runtime]) -> FakeCluster:
    pods = [
        PodView(name=f"pod-{i}", ip=runtime.ip, started_at=0.0, ready=True, terminating=False)
        for i, runtime in enumerate(runtimes)
    ]
    return FakeCluster(pods_=pods, replicas=len(pods))


async def test_unhealthy_pod_is_restarted_once(runtimes: tuple[list[Runtime], int]) -> None:
    servers, port = runtimes
    servers[1].body = report_body(status="unhealthy", dependencies=[dependency("database", "down")])
    cluster = _cluster(servers)
    memory = AgentMemory()
    reports = await _rounds(cluster, port, 4, memory)
    assert cluster.deleted == ["pod-1"], "restarted once: the cooldown holds the rest back"
    assert reports[1].restart.restart == ("pod-1",)
    assert reports[0].unwell == ["pod-1: unhealthy (database: down)"]
    assert reports[0].healthy == 2
    assert list(memory.restart_times) == [1010.0]


async def test_sustained_load_scales_out_through_the_scale_subresource(runtimes: tuple[list[Runtime], int]) -> None:
    servers, port = runtimes
    for server in servers:
        server.body = report_body(inFlight=3, queued=1)
    cluster = _cluster(servers)
    reports = await _rounds(cluster, port, 3, AgentMemory())
    assert cluster.scaled == [5], "12 in flight or queued at 2 per replica wants 6, capped at maxReplicas 5"
    assert reports[-1].scale is not None and "scale out" in reports[-1].scale.reason
    assert cluster.deleted == []
