"""The health report computed in-process: a database that goes away makes the runtime unhealthy."""

from __future__ import annotations

import pytest

from agent_runtime import results
from agent_runtime.errors import ApiError
from agent_runtime.ops import health_report

from .harness import Backend


async def test_database_down_is_unhealthy_and_names_it(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime()
    await runtime.start()
    try:
        assert (await health_report(runtime)).status == "healthy"
        await runtime.services.database.close()
        report = await health_report(runtime)
    finally:
        await runtime.stop()
    assert report.status == "unhealthy"
    assert report.reasons[0].startswith("database is down")
    [database] = [d for d in report.dependencies if d.name == "database"]
    assert database.state == "down"


async def test_stop_closes_services_and_is_not_ready(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime()
    await runtime.start()
    assert runtime.ready
    await runtime.stop()
    assert not runtime.ready
    assert not runtime.container.started


async def test_reading_a_result_with_the_database_down_is_a_503(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime()
    await runtime.start()
    try:
        await runtime.services.database.close()
        with pytest.raises(ApiError) as refused:
            await results.load(runtime.services, "abc")
    finally:
        await runtime.stop()
    assert (refused.value.status, refused.value.kind) == (503, "database_unavailable")
    assert refused.value.retry_after == 5
