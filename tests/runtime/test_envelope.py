"""The request envelope on a real server: refusals by authentication, role and rate limit; one audit record each."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from agent_runtime.security.audit import verify_chain

from .harness import Backend, auth, serving, stored_audit, stored_rows


@pytest.mark.parametrize(
    ("headers", "status", "kind"),
    [
        ({}, 401, "unauthenticated"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "unauthenticated"),
        ({"Authorization": "Bearer not.a.jwt"}, 401, "unauthenticated"),
        (auth("read_only"), 403, "forbidden"),
        (auth("data_analyst"), 403, "forbidden"),
    ],
)
async def test_callers_without_a_valid_token_or_role_are_refused(
    runtime_backend: Backend, headers: dict[str, str], status: int, kind: str
) -> None:
    with serving(runtime_backend.runtime()) as url:
        response = httpx.post(f"{url}/v1/run", json={"prompt": "hi"}, headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["type"] == kind
    assert response.json()["error"]["message"]


async def test_mode_none_needs_no_token(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime({"security": {"auth": {"mode": "none", "secretRef": None}}})
    with serving(runtime) as url:
        response = httpx.post(f"{url}/v1/run", json={"prompt": "hi"})
    assert response.status_code == 200


async def test_rate_limit_per_principal_with_retry_after(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime({"security": {"rateLimit": {"requestsPerMinute": 2}}})
    with serving(runtime) as url:
        alice = [httpx.post(f"{url}/v1/run", json={"prompt": "x"}, headers=auth()) for _ in range(3)]
        bob = httpx.post(f"{url}/v1/run", json={"prompt": "x"}, headers=auth(subject="bob"))
        metrics = httpx.get(f"{url}/metrics").text
    assert [r.status_code for r in alice] == [200, 200, 429]
    assert int(alice[2].headers["Retry-After"]) >= 1
    assert alice[2].json()["error"]["type"] == "rate_limited"
    assert bob.status_code == 200
    assert 'agentry_rate_limited_total{limit="requests_per_minute"} 1.0' in metrics


async def test_every_request_is_audited_including_refused_ones(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime()
    with serving(runtime) as url:
        httpx.post(f"{url}/v1/run", json={"prompt": "x"}, headers=auth())
        httpx.post(f"{url}/v1/run", json={"prompt": "x"})
        httpx.post(f"{url}/v1/run", content=b"{", headers=auth())
        httpx.get(f"{url}/v1/results/x", headers=auth())
    records = await stored_audit(runtime, runtime_backend)
    assert [(r["endpoint"], r["status"]) for r in records] == [
        ("run", 200),
        ("run", 401),
        ("run", 400),
        ("results", 404),
    ]
    assert records[1]["principal"] == "-"
    assert "alice@example.com" not in json.dumps(records)
    assert verify_chain(await stored_rows(runtime, runtime_backend)).ok


PRICES = {"inputPerMillionTokens": 3.0, "outputPerMillionTokens": 15.0, "currency": "EUR"}


def expected_cost(usage: dict[str, Any]) -> float:
    exact = (Decimal(usage["inputTokens"]) * 3 + Decimal(usage["outputTokens"]) * 15) / 1_000_000
    return float(exact.quantize(Decimal("0.000000001")))


async def test_with_a_price_table_each_run_reports_its_cost_everywhere(runtime_backend: Backend) -> None:
    """The answer, the stored result, the stream's final event, the audit record and the metrics agree."""
    runtime = runtime_backend.runtime({"agent": {"pricing": PRICES}})
    with serving(runtime) as url:
        answer = httpx.post(f"{url}/v1/run", json={"prompt": "what does it cost?"}, headers=auth()).json()
        stored = httpx.get(f"{url}/v1/results/{answer['runId']}", headers=auth()).json()
        with httpx.stream("POST", f"{url}/v1/run/stream", json={"prompt": "and streamed?"}, headers=auth()) as r:
            lines = [line for line in r.iter_lines() if line.startswith("data: ")]
        final = json.loads(lines[-1].removeprefix("data: "))
        metrics = httpx.get(f"{url}/metrics").text
    records = await stored_audit(runtime, runtime_backend)
    usage = answer["usage"]
    assert usage["inputTokens"] > 0 and usage["outputTokens"] > 0
    assert usage["cost"] == {"amount": expected_cost(usage), "currency": "EUR"}
    assert stored["usage"]["cost"] == usage["cost"]
    assert final["usage"]["cost"] == {"amount": expected_cost(final["usage"]), "currency": "EUR"}
    assert [r["cost"] for r in records] == [usage["cost"], {"amount": 0.0, "currency": "EUR"}, final["usage"]["cost"]]
    total = [line for line in metrics.splitlines() if line.startswith('agentry_cost_total{currency="EUR"}')]
    assert total and float(total[0].split()[-1]) == pytest.approx(
        usage["cost"]["amount"] + final["usage"]["cost"]["amount"]
    )


async def test_without_a_price_table_cost_is_null_and_not_exported(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime()
    with serving(runtime) as url:
        answer = httpx.post(f"{url}/v1/run", json={"prompt": "free?"}, headers=auth()).json()
        metrics = httpx.get(f"{url}/metrics").text
    records = await stored_audit(runtime, runtime_backend)
    assert answer["usage"]["cost"] is None
    assert records[0]["cost"] is None
    assert "agentry_cost_total{" not in metrics
