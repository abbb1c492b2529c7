"""The pydantic models: wire format, defaults, and Python rules that agree with their CEL twins."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from agentry_api import v1alpha1 as api
from agentry_api.base import ApiModel, error_lines
from agentry_api.validate import _evaluate
from agentry_api.wiring import secret_env_name, secret_file_path

from .bad_manifests import BASE


def _spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"agent": {"model": "test"}, "security": {"auth": {"mode": "none"}}}
    spec.update(changes)
    return spec


def test_wire_is_camel_case_and_round_trips() -> None:
    spec = api.AgentDeploymentSpec.model_validate(
        _spec(services={"externalAPI": {"baseURL": "https://api.example.com"}}, replicas=2)
    )
    wire = spec.wire()
    assert wire["services"]["externalAPI"]["baseURL"] == "https://api.example.com"
    assert wire["concurrency"]["maxConcurrentRequests"] == 10
    assert "replicas" in wire and "database" not in wire["services"]
    assert api.AgentDeploymentSpec.model_validate(wire) == spec


def test_defaults_are_secure() -> None:
    spec = api.AgentDeploymentSpec.model_validate(
        {"agent": {"model": "test"}, "security": {"auth": {"secretRef": {"name": "jwt", "key": "key"}}}}
    )
    assert spec.security.auth.mode == api.AuthMode.JWT
    assert spec.security.auth.algorithms == ["HS256"]
    assert spec.security.privacy.enabled and spec.security.audit.enabled
    assert spec.security.allowed_origins == []
    assert spec.security.auth.max_token_lifetime_seconds == 86_400


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, 1),
        ({"replicas": 3}, 3),
        ({"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 4}}, 2),
        ({"replicas": 0}, 0),
    ],
)
def test_desired_replicas(changes: dict[str, Any], expected: int) -> None:
    assert api.AgentDeploymentSpec.model_validate(_spec(**changes)).desired_replicas() == expected


def test_secret_refs_name_their_fields() -> None:
    spec = api.AgentDeploymentSpec.model_validate(
        BASE["spec"] | {"services": {"cache": {"urlSecretRef": {"name": "r", "key": "url"}}}}
    )
    assert [path for path, _ in spec.secret_refs()] == [
        "spec.services.cache.urlSecretRef",
        "spec.security.auth.secretRef",
    ]


def test_secret_wiring_names() -> None:
    ref = api.SecretKeyRef(name="support-pg", key="db.url")
    assert secret_file_path(ref) == "/var/run/agentry/secrets/support-pg/db.url"
    assert secret_env_name(ref) == "AGENTRY_SECRET_SUPPORT_PG__DB_URL"


def test_error_lines_name_wire_fields() -> None:
    with pytest.raises(ValidationError) as caught:
        api.AgentDeploymentSpec.model_validate(_spec(concurrency={"maxQueuedRequests": -1}))
    assert error_lines(caught.value, prefix="spec") == [
        "spec.concurrency.maxQueuedRequests: Input should be greater than or equal to 0"
    ]


def _rule_models() -> list[type[ApiModel]]:
    return [
        model for model in vars(api).values() if isinstance(model, type) and issubclass(model, ApiModel) and model.rules
    ]


# Objects on both sides of each rule: the Python check and the CEL rule must give the same verdict.
RULE_CASES: dict[str, list[dict[str, Any]]] = {
    "AgentSpec": [
        {"model": "test"},
        {"model": "ollama:llama3", "endpoint": {"baseURL": "http://x/v1"}},
        {"model": "anthropic:claude", "endpoint": {"baseURL": "http://x/v1"}},
        {"model": "test", "outputSchema": {"type": "object"}},
        {"model": "test", "outputSchema": {"type": "string"}},
        {"model": "test", "outputSchema": {"properties": {}}},
        {"code": {"entrypoint": "bot.agent:agent"}},
        {"code": {"entrypoint": "bot.agent:agent"}, "model": "ollama:llama3", "endpoint": {"baseURL": "http://x/v1"}},
        {"code": {"entrypoint": "bot.agent:agent"}, "endpoint": {"baseURL": "http://x/v1"}},
        {"code": {"entrypoint": "bot.agent:agent"}, "instructions": "Be brief."},
        {"instructions": "Be brief."},
        {"model": "test", "toolsets": []},
        {"model": "test", "toolsets": [{"name": "a", "builtin": {}}, {"name": "b", "builtin": {}}]},
        {"model": "test", "toolsets": [{"name": "a", "builtin": {}}, {"name": "a", "builtin": {}}]},
    ],
    "ToolsetSpec": [
        {"name": "a", "builtin": {}},
        {"name": "a", "mcp": {"url": "http://m/mcp"}},
        {"name": "a", "builtin": {}, "mcp": {"url": "http://m/mcp"}},
        {"name": "a"},
    ],
    "McpToolsetSpec": [
        {"url": "http://m/mcp"},
        {"url": "http://m/mcp", "headers": [{"name": "X-Api-Key", "secretRef": {"name": "a", "key": "b"}}]},
        {
            "url": "http://m/mcp",
            "headers": [
                {"name": "X-Api-Key", "secretRef": {"name": "a", "key": "b"}},
                {"name": "x-api-key", "secretRef": {"name": "a", "key": "c"}},
            ],
        },
        {"url": "http://m/mcp", "headers": [{"name": "Mcp-Session-Id", "secretRef": {"name": "a", "key": "b"}}]},
        {"url": "http://m/mcp", "headers": [{"name": "authorization", "secretRef": {"name": "a", "key": "b"}}]},
        {
            "url": "http://m/mcp",
            "forwardBearerToken": True,
            "headers": [{"name": "authorization", "secretRef": {"name": "a", "key": "b"}}],
        },
        {
            "url": "http://m/mcp",
            "forwardBearerToken": True,
            "headers": [{"name": "X-Api-Key", "secretRef": {"name": "a", "key": "b"}}],
        },
    ],
    "AutoscalingSpec": [
        {"minReplicas": 1, "maxReplicas": 1},
        {"minReplicas": 3, "maxReplicas": 2},
        {"provider": "HPA", "targetCPUUtilizationPercent": 70},
        {"provider": "HPA"},
    ],
    "AuthSpec": [
        {"mode": "none"},
        {"mode": "jwt"},
        {"mode": "jwt", "secretRef": {"name": "a", "key": "b"}},
        {"mode": "jwt", "algorithms": ["RS256"], "secretRef": {"name": "a", "key": "b"}},
        {"mode": "jwt", "algorithms": ["ES256"], "publicKeySecretRef": {"name": "a", "key": "b"}},
        {"mode": "jwt", "algorithms": ["HS256", "RS256"], "secretRef": {"name": "a", "key": "b"}},
    ],
    "PrivacySpec": [
        {"mode": "mask"},
        {"mode": "hmac"},
        {"mode": "hmac", "hmacKeySecretRef": {"name": "a", "key": "b"}},
    ],
    "BudgetsSpec": [
        {},
        {"perPrincipal": {"tokens": 1000}},
        {"perAgent": {"cost": 5.0}},
        {"perPrincipal": {}},
        {"perAgent": {}},
        {"perPrincipal": {"tokens": 10}, "perAgent": {}},
    ],
    "AgentDeploymentSpec": [
        _spec(replicas=3),
        _spec(replicas=3, autoscaling={"enabled": True, "minReplicas": 1, "maxReplicas": 2}),
        _spec(replicas=1, autoscaling={"enabled": True, "minReplicas": 1, "maxReplicas": 2}),
        _spec(autoscaling={"enabled": True, "minReplicas": 1, "maxReplicas": 2}),
        _spec(agent={"code": {"entrypoint": "bot.agent:agent"}}),
        _spec(agent={"code": {"entrypoint": "bot.agent:agent"}}, pod={"image": "example/bot:1"}),
        _spec(agent={"model": "test", "toolsets": [{"name": "t", "mcp": {"url": "http://m/mcp"}}]}),
        _spec(
            agent={
                "model": "test",
                "toolsets": [{"name": "t", "mcp": {"url": "http://m/mcp", "forwardBearerToken": True}}],
            }
        ),
        _spec(
            agent={
                "model": "test",
                "toolsets": [{"name": "t", "mcp": {"url": "http://m/mcp", "forwardBearerToken": True}}],
            },
            security={"auth": {"mode": "jwt", "secretRef": {"name": "a", "key": "b"}}},
        ),
        _spec(security={"auth": {"mode": "none"}, "budgets": {"perAgent": {"tokens": 100}}}),
        _spec(security={"auth": {"mode": "none"}, "budgets": {"perAgent": {"cost": 1.5}}}),
        _spec(security={"auth": {"mode": "none"}, "budgets": {"perPrincipal": {"tokens": 5, "cost": 1.5}}}),
        _spec(
            agent={"model": "test", "pricing": {"inputPerMillionTokens": 1, "outputPerMillionTokens": 2}},
            security={"auth": {"mode": "none"}, "budgets": {"perPrincipal": {"cost": 1.5}, "perAgent": {"cost": 9}}},
        ),
    ],
}


def test_every_rule_model_has_cases() -> None:
    assert {model.__name__ for model in _rule_models()} == set(RULE_CASES)


@pytest.mark.parametrize(
    ("model_name", "obj"),
    [(name, obj) for name, objs in RULE_CASES.items() for obj in objs],
)
def test_python_rules_agree_with_cel(model_name: str, obj: dict[str, Any]) -> None:
    model: type[ApiModel] = getattr(api, model_name)
    try:
        model.model_validate(obj)
        python_ok = True
    except ValidationError as exc:
        assert all(error["type"] == "value_error" for error in exc.errors()), exc
        python_ok = False
    # CEL sees the object after the API server filled in defaults, as the models do.
    cel_ok = all(_evaluate(rule.cel, _defaults_for(model, obj)) for rule in model.rules)
    assert python_ok == cel_ok


def _defaults_for(model: type[ApiModel], obj: dict[str, Any]) -> dict[str, Any]:
    from agentry_api.schema import CrdJsonSchema, structural_schema
    from agentry_api.validate import apply_defaults

    schema = structural_schema(model.model_json_schema(by_alias=True, schema_generator=CrdJsonSchema))
    result: dict[str, Any] = apply_defaults(dict(obj), schema)
    return result
