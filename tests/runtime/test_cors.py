"""CORS from spec.security.allowedOrigins, with real Origin headers against the real server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from agent_runtime.cors import CorsPolicy

from .harness import Backend, auth, serving

APP = "https://app.example.com"
OTHER = "https://evil.example.net"
CORS_HEADERS = {
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-allow-credentials",
    "access-control-expose-headers",
    "access-control-max-age",
}


def cors_headers(response: httpx.Response) -> set[str]:
    return {name for name in response.headers if name.lower() in CORS_HEADERS}


def preflight(url: str, path: str, *, origin: str, method: str = "POST", headers: str = "") -> httpx.Response:
    request_headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        request_headers["Access-Control-Request-Headers"] = headers
    return httpx.options(f"{url}{path}", headers=request_headers)


@pytest.fixture
def app_url(runtime_backend: Backend) -> Iterator[str]:
    """A runtime that admits browser calls from APP only."""
    with serving(runtime_backend.runtime({"security": {"allowedOrigins": [APP, "http://localhost:3000"]}})) as url:
        yield url


def test_preflight_from_an_allowed_origin_needs_no_token(app_url: str) -> None:
    response = preflight(app_url, "/v1/run", origin=APP, headers="authorization, content-type")
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert response.headers["Access-Control-Allow-Methods"] == "POST"
    assert set(response.headers["Access-Control-Allow-Headers"].split(", ")) == {"authorization", "content-type"}
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert "Origin" in response.headers["Vary"]
    assert "access-control-allow-credentials" not in response.headers


def test_preflight_names_the_methods_of_the_route(app_url: str) -> None:
    response = preflight(app_url, "/v1/results/abc", origin=APP, method="GET", headers="Authorization")
    assert response.status_code == 204
    assert set(response.headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "HEAD"}


@pytest.mark.parametrize(
    ("origin", "method", "headers", "reason"),
    [
        (OTHER, "POST", "authorization", "origin is not in spec.security.allowedOrigins"),
        ("https://app.example.com.evil.net", "POST", "", "origin is not in"),
        ("null", "POST", "", "origin is not in"),
        (APP, "DELETE", "authorization", "method 'DELETE' is not allowed here (allowed: POST)"),
        (APP, "POST", "authorization, x-debug", "request headers not allowed"),
    ],
    ids=["other-origin", "suffix-trick", "null-origin", "method", "header"],
)
def test_refused_preflight_gets_no_cors_header(
    app_url: str, origin: str, method: str, headers: str, reason: str
) -> None:
    response = preflight(app_url, "/v1/run", origin=origin, method=method, headers=headers)
    assert response.status_code == 403
    assert cors_headers(response) == set()
    assert reason in response.json()["error"]["message"]


def test_preflight_for_an_unknown_path_is_a_404(app_url: str) -> None:
    response = preflight(app_url, "/v1/nothing", origin=APP)
    assert response.status_code == 404
    assert cors_headers(response) == set()


def test_request_from_an_allowed_origin_is_readable_by_the_browser(app_url: str) -> None:
    ok = httpx.post(f"{app_url}/v1/run", json={"prompt": "hi"}, headers={**auth(), "Origin": APP})
    no_token = httpx.post(f"{app_url}/v1/run", json={"prompt": "hi"}, headers={"Origin": "HTTP://LOCALHOST:3000"})
    for response in (ok, no_token):
        assert "Origin" in response.headers["Vary"]
        assert "access-control-allow-credentials" not in response.headers
    assert ok.status_code == 200 and ok.headers["Access-Control-Allow-Origin"] == APP
    assert no_token.status_code == 401  # still authenticated: CORS opens the browser, not the API
    assert no_token.headers["Access-Control-Allow-Origin"] == "HTTP://LOCALHOST:3000"
    assert "WWW-Authenticate" in no_token.headers["Access-Control-Expose-Headers"]


def test_request_from_another_origin_gets_no_cors_header(app_url: str) -> None:
    response = httpx.post(f"{app_url}/v1/run", json={"prompt": "hi"}, headers={**auth(), "Origin": OTHER})
    assert response.status_code == 200  # the server answers; the browser withholds it from the page
    assert cors_headers(response) == set()
    assert "Origin" in response.headers["Vary"]


def test_any_origin_never_allows_credentials(runtime_backend: Backend) -> None:
    with serving(runtime_backend.runtime({"security": {"allowedOrigins": ["*"]}})) as url:
        simple = httpx.get(f"{url}/health", headers={"Origin": OTHER})
        pre = preflight(url, "/v1/run", origin=OTHER, headers="authorization")
    assert simple.headers["Access-Control-Allow-Origin"] == pre.headers["Access-Control-Allow-Origin"] == "*"
    assert pre.status_code == 204
    assert "access-control-allow-credentials" not in simple.headers
    assert "access-control-allow-credentials" not in pre.headers


def test_without_allowed_origins_there_is_no_cors(runtime_backend: Backend) -> None:
    with serving(runtime_backend.runtime()) as url:
        pre = preflight(url, "/v1/run", origin=APP, headers="authorization")
        simple = httpx.get(f"{url}/health", headers={"Origin": APP})
    assert pre.status_code == 405 and pre.headers["Allow"] == "POST"
    assert cors_headers(pre) == cors_headers(simple) == set()


def test_policy_compares_origins_case_insensitively() -> None:
    policy = CorsPolicy.of(["https://App.Example.com"])
    assert policy.allow_origin("https://app.example.com") == "https://app.example.com"
    assert policy.allow_origin("https://app.example.com:8443") is None
    assert CorsPolicy.of(["*"]).allow_origin("null") == "*"
