"""The operator reads a real runtime's /health with the contract's model: both sides agree on every field."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import aiohttp
import httpx
import pytest

from agent_operator.health.policy import PodState, classify
from agent_operator.health.poller import PodTarget, Poller
from agent_runtime.openapi import openapi_document
from agent_runtime.settings import RuntimeSettings
from agentry_api.health import HealthReport
from agentry_api.v1alpha1 import HealthSpec
from tests.runtime.harness import Backend, auth, serving

HEALTH = HealthSpec()


@pytest.fixture(scope="module")
def runtime_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real runtime (SQLite, memory cache, the offline model) on a loopback port, after two runs."""
    with serving(Backend(data_dir=tmp_path_factory.mktemp("runtime")).runtime()) as url:
        for _ in range(2):
            assert httpx.post(f"{url}/v1/run", json={"prompt": "x"}, headers=auth()).status_code == 200
        yield url


@pytest.fixture
async def poller() -> AsyncIterator[Poller]:
    async with aiohttp.ClientSession() as session:
        yield Poller(session=session, max_concurrent=1, clock=time.time)


async def test_the_operator_polls_a_healthy_runtime_as_healthy(runtime_url: str, poller: Poller) -> None:
    address = urlsplit(runtime_url)
    assert address.hostname is not None and address.port is not None
    poll = await poller.poll(PodTarget("pod", address.hostname, address.port), health=HEALTH)
    assert (poll.state, poll.reason) == (PodState.HEALTHY, "")
    assert (poll.in_flight, poll.queued, poll.max_concurrent) == (0, 0, 4)
    assert poll.p95_ms is not None and poll.p95_ms >= 0


def test_the_runtime_answer_is_the_contract_model(runtime_url: str) -> None:
    body = httpx.get(f"{runtime_url}/health").json()
    report = HealthReport.model_validate(body)
    assert report.model_dump(mode="json", by_alias=True) == body, "every field the runtime sends is in the model"
    assert report.recent_requests == 2
    assert {d.name for d in report.dependencies} == {"database", "cache", "audit", "rateLimiter", "budgets"}


@pytest.mark.parametrize("field", ["status", "inFlight", "latencyMs", "dependencies"])
def test_a_runtime_answer_without_a_field_is_unhealthy_naming_it(runtime_url: str, field: str) -> None:
    body = httpx.get(f"{runtime_url}/health").json()
    del body[field]
    poll = classify(body, at=0, health=HEALTH)
    assert poll.state == PodState.UNHEALTHY
    assert poll.reason == f"health answer does not match the runtime's report: {field}: Field required"


def test_a_newer_runtime_may_add_fields_while_this_one_documents_none(runtime_url: str) -> None:
    body = httpx.get(f"{runtime_url}/health").json()
    body["tokensPerSecond"] = 3.5
    body["memory"]["heapBytes"] = 1024
    assert classify(body, at=0, health=HEALTH).state == PodState.HEALTHY
    schemas = openapi_document(title="t", version="1", settings=RuntimeSettings())["components"]["schemas"]
    for model in ("HealthReport", "Memory", "Percentiles", "Dependency", "Breaker"):
        assert schemas[model]["additionalProperties"] is False, model
