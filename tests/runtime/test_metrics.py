"""The runtime's series stay few: labels come from bounded sets, never a principal, conversation or run id."""

from __future__ import annotations

import re
import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .harness import Backend, auth, serving

#: Every label the runtime exports, each from a set fixed by the code or the spec (tools, breakers, currencies).
BOUNDED_LABELS = {
    *("endpoint", "status", "le", "direction", "currency", "tool", "outcome", "kind", "limit", "name"),
    *("scope", "level"),
}
#: The agent's own series (its info, its targets, its budgets and spend) carry its name, one value per runtime.
AGENT_SERIES = {
    *("agentry_agent_info", "agentry_target_error_ratio", "agentry_target_p95_latency_seconds"),
    *("agentry_budget_spent", "agentry_budget_limit", "agentry_budget_warn_ratio"),
}


async def test_a_scrape_after_many_callers_names_none_of_them(runtime_backend: Backend) -> None:
    subjects = [f"user-{n}@example.com" for n in range(5)]
    runtime = runtime_backend.runtime(
        {
            "agent": {"pricing": {"inputPerMillionTokens": 1, "outputPerMillionTokens": 2}},
            "security": {"budgets": {"perPrincipal": {"tokens": 10**9}, "perAgent": {"cost": 1000}}},
        }
    )
    ids: set[str] = set()
    with serving(runtime) as url:
        for subject in subjects:
            answer = httpx.post(f"{url}/v1/run", json={"prompt": "hi"}, headers=auth(subject=subject)).json()
            ids |= {answer["runId"], answer["conversationId"]}
            again = {"prompt": "and?", "conversationId": answer["conversationId"]}
            ids.add(httpx.post(f"{url}/v1/run", json=again, headers=auth(subject=subject)).json()["runId"])
        probe = uuid.uuid4().hex  # unknown paths and ids must not become label values either
        httpx.get(f"{url}/v1/results/{probe}", headers=auth())
        httpx.get(f"{url}/v1/conversations/{probe}", headers=auth())
        httpx.get(f"{url}/no/such/{probe}")
        text = httpx.get(f"{url}/metrics").text
    families = list(text_string_to_metric_families(text))
    labels = {
        name for family in families if family.name not in AGENT_SERIES for s in family.samples for name in s.labels
    }
    info = {name for family in families if family.name in AGENT_SERIES for s in family.samples for name in s.labels}
    assert labels <= BOUNDED_LABELS, labels - BOUNDED_LABELS
    assert "agent" in info and info <= {"agent", "kind", "scope"}
    for secret in [*subjects, *ids, probe, "alice"]:
        assert secret not in text
    endpoints = {s.labels["endpoint"] for f in families for s in f.samples if "endpoint" in s.labels}
    assert all(re.fullmatch(r"[a-z_]+", endpoint) for endpoint in endpoints), endpoints
    assert len([s for f in families for s in f.samples]) < 400  # the whole scrape stays small
