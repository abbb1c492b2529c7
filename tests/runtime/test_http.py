"""HTTP as clients expect it, on the real server: RFC 6750 challenges, Allow, stated limits, token lifetime."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from agent_runtime.security.permissions import ROLE_PERMISSIONS, Permission
from agent_runtime.settings import RuntimeSettings

from .harness import Backend, auth, serving, stored_audit, token

#: Every endpoint that needs a token: method, path, and a body it accepts.
GUARDED: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/v1/run", {"prompt": "hi"}),
    ("POST", "/v1/run/batch", {"items": [{"prompt": "hi"}]}),
    ("GET", "/v1/results/some-id", None),
]
BAD_TOKEN = token(extra_claims={"aud": "another-agent"})


@pytest.mark.parametrize(("method", "path", "body"), GUARDED, ids=[g[1] for g in GUARDED])
async def test_every_401_carries_a_bearer_challenge(
    runtime_backend: Backend, method: str, path: str, body: dict[str, Any] | None
) -> None:
    with serving(runtime_backend.runtime()) as url:
        missing = httpx.request(method, f"{url}{path}", json=body)
        invalid = httpx.request(method, f"{url}{path}", json=body, headers={"Authorization": f"Bearer {BAD_TOKEN}"})
        basic = httpx.request(method, f"{url}{path}", json=body, headers={"Authorization": "Basic YWxpY2U6eA=="})
    assert (missing.status_code, invalid.status_code, basic.status_code) == (401, 401, 401)
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="agentry"'
    assert basic.headers["WWW-Authenticate"] == 'Bearer realm="agentry"'
    assert invalid.headers["WWW-Authenticate"] == (
        'Bearer realm="agentry", error="invalid_token", error_description="token audience is not accepted"'
    )
    for part in BAD_TOKEN.split("."):
        assert part not in invalid.headers["WWW-Authenticate"]


async def test_403_names_the_missing_scope(runtime_backend: Backend) -> None:
    with serving(runtime_backend.runtime()) as url:
        response = httpx.post(f"{url}/v1/run", json={"prompt": "hi"}, headers=auth("read_only"))
    assert response.status_code == 403
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="agentry", error="insufficient_scope", error_description="permission')


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/run", "POST"),
        ("PUT", "/v1/run/batch", "POST"),
        ("POST", "/v1/results/x", "GET, HEAD"),
        ("DELETE", "/health", "GET, HEAD"),
        ("OPTIONS", "/metrics", "GET, HEAD"),
        ("POST", "/openapi.json", "GET, HEAD"),
    ],
)
async def test_every_405_carries_allow(runtime_backend: Backend, method: str, path: str, allow: str) -> None:
    with serving(runtime_backend.runtime()) as url:
        response = httpx.request(method, f"{url}{path}")
    assert response.status_code == 405
    assert sorted(response.headers["Allow"].split(", ")) == sorted(allow.split(", "))
    assert response.json()["error"]["type"] == "method_not_allowed"


def _worst_prompt(length: int) -> str:
    """A prompt whose JSON encoding is as long as it gets: astral characters, escaped as surrogate pairs."""
    return "\U0001f600" * length


async def test_the_document_states_the_limits_the_server_enforces(runtime_backend: Backend) -> None:
    settings = RuntimeSettings(max_body_bytes=8192, max_batch_items=3)
    with serving(runtime_backend.runtime(settings=settings)) as url:
        document = httpx.get(f"{url}/openapi.json").json()
        schemas = document["components"]["schemas"]
        max_chars = schemas["RunRequest"]["properties"]["prompt"]["maxLength"]
        max_items = schemas["BatchRequest"]["properties"]["items"]["maxItems"]

        def run(prompt: str) -> httpx.Response:
            body = json.dumps({"prompt": prompt})  # ensure_ascii: 12 bytes per astral character
            return httpx.post(f"{url}/v1/run", content=body, headers={**auth(), "Content-Type": "application/json"})

        longest, too_long = run(_worst_prompt(max_chars)), run("x" * (max_chars + 1))
        batch = httpx.post(f"{url}/v1/run/batch", json={"items": [{"prompt": "x"}] * max_items}, headers=auth())
        over = httpx.post(f"{url}/v1/run/batch", json={"items": [{"prompt": "x"}] * (max_items + 1)}, headers=auth())
        long_item = httpx.post(
            f"{url}/v1/run/batch", json={"items": [{"prompt": "x"}, {"prompt": "y" * (max_chars + 1)}]}, headers=auth()
        )
    assert (max_chars, max_items) == (settings.max_prompt_chars, 3)
    assert max_chars == (8192 - 64) // 12
    assert "8192 bytes" in schemas["RunRequest"]["description"]
    assert longest.status_code == 200, longest.text
    assert too_long.status_code == 422
    assert too_long.json()["error"]["message"] == f"prompt: String should have at most {max_chars} characters"
    assert batch.status_code == 200
    assert over.status_code == 422 and "items: at most 3 items" in over.json()["error"]["message"]
    assert long_item.status_code == 422
    assert long_item.json()["error"]["message"].startswith("items[1].prompt: String should have at most")


def test_default_limits_keep_a_full_prompt_inside_the_body_limit() -> None:
    settings = RuntimeSettings()
    encoded = json.dumps({"prompt": _worst_prompt(settings.max_prompt_chars)})
    assert len(encoded.encode()) <= settings.max_body_bytes
    assert settings.max_prompt_chars > 80_000


async def test_a_token_living_longer_than_the_maximum_is_refused_and_audited(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime({"security": {"auth": {"maxTokenLifetimeSeconds": 7200}}})
    exactly = {"Authorization": f"Bearer {token(ttl_seconds=7200)}"}
    over = {"Authorization": f"Bearer {token(ttl_seconds=7201)}"}
    forever = {"Authorization": f"Bearer {token(extra_claims={'exp': 10**30})}"}
    with serving(runtime) as url:
        accepted = httpx.post(f"{url}/v1/run", json={"prompt": "x"}, headers=exactly)
        # Twice each: the verified-token cache must never turn a refusal into a success.
        refused = [httpx.post(f"{url}/v1/run", json={"prompt": "x"}, headers=h) for h in (over, over, forever, forever)]
    assert accepted.status_code == 200
    assert [r.status_code for r in refused] == [401] * 4
    for response in refused:
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        assert "longer than the 7200s this agent accepts" in response.json()["error"]["message"]
    records = await stored_audit(runtime, runtime_backend)
    assert [r["status"] for r in records] == [200, 401, 401, 401, 401]
    assert "reason" not in records[0]
    assert {r["reason"] for r in records[1:]} == {
        "token lifetime (exp - iat) is longer than the 7200s this agent accepts"
    }


METRICS_AUTH = {
    "security": {
        "metrics": {"requireAuth": True},
        "authorization": {"allowedRoles": ["admin", "agent_operator", "data_analyst", "read_only"]},
    }
}


async def test_metrics_can_require_a_token_with_read_metrics(runtime_backend: Backend) -> None:
    with serving(runtime_backend.runtime(METRICS_AUTH)) as url:
        anonymous = httpx.get(f"{url}/metrics")
        operator = httpx.get(f"{url}/metrics", headers=auth("agent_operator"))
        analyst = httpx.get(f"{url}/metrics", headers=auth("data_analyst"))
        admin = httpx.get(f"{url}/metrics", headers=auth("admin"))
        probes = [httpx.get(f"{url}{path}").status_code for path in ("/health", "/healthz", "/readyz")]
        document = httpx.get(f"{url}/openapi.json").json()
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == 'Bearer realm="agentry"'
    assert operator.status_code == 403
    assert "permission 'read_metrics' is required" in operator.json()["error"]["message"]
    assert analyst.status_code == admin.status_code == 200
    assert "agentry_requests_total" in analyst.text
    assert probes == [200, 200, 200]
    assert document["paths"]["/metrics"]["get"]["security"] == [{"bearer": []}]


async def test_metrics_are_open_by_default(runtime_backend: Backend) -> None:
    with serving(runtime_backend.runtime()) as url:
        response = httpx.get(f"{url}/metrics")
        document = httpx.get(f"{url}/openapi.json").json()
    assert response.status_code == 200
    assert document["paths"]["/metrics"]["get"]["security"] == []


#: The endpoint each permission guards (with spec.security.metrics.requireAuth on), and a request it accepts.
GUARDS: dict[Permission, tuple[str, str, dict[str, Any] | None]] = {
    Permission.RUN: ("POST", "/v1/run", {"prompt": "hi"}),
    Permission.READ_RESULTS: ("GET", "/v1/results/no-such-run", None),
    Permission.READ_METRICS: ("GET", "/metrics", None),
}


async def test_every_permission_guards_an_endpoint(runtime_backend: Backend) -> None:
    """No permission is decoration: each lets its roles through one endpoint and stops every other role."""
    assert set(GUARDS) == set(Permission)
    outcomes: dict[tuple[Permission, str], tuple[int, str]] = {}
    with serving(runtime_backend.runtime(METRICS_AUTH)) as url:
        for permission, (method, path, body) in GUARDS.items():
            for role in ROLE_PERMISSIONS:
                response = httpx.request(method, f"{url}{path}", json=body, headers=auth(role))
                outcomes[permission, role] = (response.status_code, response.text)
    for (permission, role), (status, text) in outcomes.items():
        if permission in ROLE_PERMISSIONS[role]:
            assert status in (200, 404), (permission, role, text)  # 404: no such run, but let in
        else:
            assert status == 403 and f"permission '{permission}' is required" in text, (permission, role, text)
