"""Budgets through the envelope on a real server: 429 naming the budget and its reset, spend and metrics.

The spend in /health, the metrics and the audit trail; per pod (in-process) and shared through a real Redis.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import openai
import pytest
import redis

from agent_runtime.runtime import Runtime
from tests.support.clock import FakeClock

from .harness import Backend, auth, serving, stored_audit, token

PRICES = {"inputPerMillionTokens": 100, "outputPerMillionTokens": 400, "currency": "EUR"}


def today_noon() -> float:
    """Noon UTC of the real today: the budget hashes in Redis expire two days after it, never in the past."""
    now = datetime.now(UTC)
    return float(calendar.timegm((now.year, now.month, now.day, 12, 0, 0)))


@pytest.fixture
def clock(runtime_backend: Backend) -> Iterator[FakeClock]:
    """The budgets' clock, at noon; with Redis, the agent's budget hashes are removed first."""
    if runtime_backend.redis_url:
        client = redis.Redis.from_url(runtime_backend.redis_url)
        for key in client.scan_iter("agentry:test:agent:budget:*"):
            client.delete(key)
        client.close()
    yield FakeClock(today_noon())


def budgeted(backend: Backend, budgets: dict[str, Any], clock: FakeClock, **overrides: Any) -> Runtime:
    runtime = backend.runtime({"security": {"budgets": budgets}, **overrides})
    runtime.budget_clock = clock
    return runtime


def run(url: str, subject: str = "alice@example.com") -> httpx.Response:
    return httpx.post(f"{url}/v1/run", json={"prompt": "spend"}, headers=auth(subject=subject), timeout=10)


async def test_a_caller_over_its_budget_gets_429_naming_it_and_its_reset(
    runtime_backend: Backend, clock: FakeClock
) -> None:
    runtime = budgeted(runtime_backend, {"perPrincipal": {"tokens": 100}, "warnAtPercent": 50}, clock)
    with serving(runtime) as url:
        first = run(url)
        tokens = first.json()["usage"]["inputTokens"] + first.json()["usage"]["outputTokens"]
        answers = [first] + [run(url) for _ in range(100 // tokens + 2)]
        refused = answers[-1]
        other = run(url, subject="bob@example.com")
        health = httpx.get(f"{url}/health").json()
        metrics = httpx.get(f"{url}/metrics").text
    statuses = [a.status_code for a in answers]
    allowed = statuses.count(200)
    assert statuses == [200] * allowed + [429] * (len(statuses) - allowed)
    assert (allowed - 1) * tokens < 100 <= allowed * tokens  # stopped within one run of the budget
    assert other.status_code == 200
    error = refused.json()["error"]
    tomorrow = datetime.fromtimestamp(clock.now + 86_400, UTC).strftime("%Y-%m-%d")
    assert error["type"] == "budget_exceeded"
    assert error["message"] == (
        f"budget exceeded: the perPrincipal daily tokens budget of 100 tokens is spent; "
        f"it resets at {tomorrow}T00:00:00Z"
    )
    assert refused.headers["retry-after"] == str(12 * 3600)
    spend = health["spend"]
    assert spend["tokens"] == (allowed + 1) * tokens and spend["budgetPercent"] is None
    assert spend["shared"] is bool(runtime_backend.redis_url)
    assert spend["period"] == datetime.fromtimestamp(clock.now, UTC).strftime("%Y-%m-%d")
    refusals = len(statuses) - allowed
    assert f'agentry_budget_refused_total{{kind="tokens",scope="principal"}} {refusals}.0' in metrics
    assert 'agentry_budget_crossings_total{kind="tokens",level="warn",scope="principal"} 2.0' in metrics
    assert 'agentry_budget_crossings_total{kind="tokens",level="exhausted",scope="principal"} 1.0' in metrics
    assert 'agentry_budget_limit{agent="test/agent",kind="tokens",scope="principal"} 100.0' in metrics
    assert "alice" not in metrics and "bob" not in metrics
    records = await stored_audit(runtime, runtime_backend)
    assert [r["error"] for r in records].count("budget_exceeded") == refusals
    crossings = [b for r in records for b in r.get("budgets", [])]
    assert {"budget": "perPrincipal.tokens", "level": "exhausted"} in crossings


async def test_each_budget_counter_is_exported_at_zero_before_any_run(
    runtime_backend: Backend, clock: FakeClock
) -> None:
    """So `increase()` over the first refusal or crossing sees it (a series born at 1 has no earlier sample)."""
    runtime = budgeted(runtime_backend, {"perPrincipal": {"tokens": 100}, "perAgent": {"tokens": 1000}}, clock)
    with serving(runtime) as url:
        metrics = httpx.get(f"{url}/metrics").text
    for scope in ("principal", "agent"):
        assert f'agentry_budget_refused_total{{kind="tokens",scope="{scope}"}} 0.0' in metrics
        for level in ("warn", "exhausted"):
            assert f'agentry_budget_crossings_total{{kind="tokens",level="{level}",scope="{scope}"}} 0.0' in metrics
    assert 'kind="cost"' not in metrics, "only the budgets the spec sets"


async def test_the_agent_cost_budget_counts_every_caller_and_a_new_day_resets_it(
    runtime_backend: Backend, clock: FakeClock
) -> None:
    runtime = budgeted(runtime_backend, {"perAgent": {"cost": 0.02}}, clock, agent={"model": "test", "pricing": PRICES})
    with serving(runtime) as url:
        statuses = [run(url, subject=f"user{i}").status_code for i in range(5)]
        health = httpx.get(f"{url}/health").json()
        refused = run(url, subject="someone-new")
        clock.now = clock.now + 12 * 3600  # midnight UTC
        after_reset = run(url, subject="someone-new")
        fresh = httpx.get(f"{url}/health").json()["spend"]
    assert statuses[0] == 200 and 429 in statuses
    assert refused.status_code == 429
    assert "perAgent daily cost budget of 0.02 EUR is spent" in refused.json()["error"]["message"]
    spend = health["spend"]
    assert spend["currency"] == "EUR" and spend["cost"] >= 0.02 and spend["budgetPercent"] >= 100
    assert after_reset.status_code == 200
    assert fresh["period"] != spend["period"] and fresh["budgetPercent"] < 100


async def test_a_stream_and_an_openai_client_are_refused_before_any_byte(
    runtime_backend: Backend, clock: FakeClock
) -> None:
    runtime = budgeted(runtime_backend, {"perPrincipal": {"tokens": 1}}, clock)
    with serving(runtime) as url:
        assert run(url).status_code == 200
        stream = httpx.post(f"{url}/v1/run/stream", json={"prompt": "more"}, headers=auth())
        sdk = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=token(), max_retries=0)
        with pytest.raises(openai.RateLimitError) as limited:
            await sdk.chat.completions.create(model="agent", messages=[{"role": "user", "content": "hi"}])
        await sdk.close()
    assert stream.status_code == 429 and stream.headers["content-type"].startswith("application/json")
    assert stream.json()["error"]["type"] == "budget_exceeded"
    assert (limited.value.type, limited.value.code) == ("rate_limit_error", "insufficient_quota")
    assert "perPrincipal daily tokens budget of 1 tokens" in limited.value.message


async def test_without_budgets_health_still_reports_the_day_s_spend(runtime_backend: Backend, clock: FakeClock) -> None:
    runtime = runtime_backend.runtime()
    runtime.budget_clock = clock
    with serving(runtime) as url:
        usage = run(url).json()["usage"]
        spend = httpx.get(f"{url}/health").json()["spend"]
        metrics = httpx.get(f"{url}/metrics").text
    assert spend["tokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert (spend["cost"], spend["currency"], spend["budgetPercent"]) == (None, None, None)
    assert f'agentry_budget_spent{{agent="test/agent",kind="tokens"}} {float(spend["tokens"])}' in metrics
    assert "agentry_budget_limit{" not in metrics and 'kind="cost"' not in metrics


@pytest.mark.services
@pytest.mark.parametrize("backend", ["real"], indirect=True)
async def test_a_dead_redis_keeps_budgets_per_pod_and_health_says_so(
    runtime_backend: Backend, clock: FakeClock
) -> None:
    runtime = budgeted(runtime_backend, {"perPrincipal": {"tokens": 1}}, clock)
    with serving(runtime) as url:
        ledger = runtime.guard.budgets.ledger
        ledger.redis.mark_down(ConnectionError("simulated"))  # type: ignore[attr-defined]
        ok, refused = run(url), run(url)
        health = httpx.get(f"{url}/health").json()
    assert (ok.status_code, refused.status_code) == (200, 429)
    budgets = next(d for d in health["dependencies"] if d["name"] == "budgets")
    assert budgets["state"] == "degraded" and "kept in this pod" in budgets["detail"]
    assert health["status"] == "degraded"
