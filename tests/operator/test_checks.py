"""What the operator checks before applying: Secrets and their keys, the output schema, the model provider."""

from __future__ import annotations

from typing import Any

import pytest

from agent_operator.checks import (
    INVALID_OUTPUT_SCHEMA,
    RESOURCE_CONFLICT,
    SECRET_NOT_FOUND,
    UNKNOWN_MODEL_PROVIDER,
    check_output_schema,
    check_ownership,
    check_provider,
    check_secrets,
    check_spec,
)
from agent_operator.render.ownership import Owner
from tests.support.agents import agent

TWO_SECRETS: dict[str, Any] = {"services": {"database": {"urlSecretRef": {"name": "pg", "key": "url"}}}}


def test_present_secrets_with_their_keys_pass() -> None:
    assert check_secrets(agent(**TWO_SECRETS), secrets={"jwt": {"key"}, "pg": {"url", "other"}}) is None


def test_a_missing_secret_names_the_field_and_the_secret() -> None:
    problem = check_secrets(agent(**TWO_SECRETS), secrets={"jwt": {"key"}, "pg": None})
    assert problem is not None
    assert problem.reason == SECRET_NOT_FOUND
    assert "spec.services.database.urlSecretRef: Secret 'pg' not found" in problem.message
    assert "team-a" in problem.message


def test_a_missing_mcp_header_secret_names_its_toolset_field() -> None:
    mcp = {
        "url": "http://tickets-mcp.tools.svc:8000/mcp",
        "headers": [{"name": "X-Api-Key", "secretRef": {"name": "mcp-key", "key": "key"}}],
    }
    with_mcp = agent(agent={"model": "test", "toolsets": [{"name": "tickets", "mcp": mcp}]})
    problem = check_secrets(with_mcp, secrets={"jwt": {"key"}, "mcp-key": None})
    assert problem is not None
    assert problem.reason == SECRET_NOT_FOUND
    assert "spec.agent.toolsets[0].mcp.headers[0].secretRef: Secret 'mcp-key' not found" in problem.message


def test_a_missing_key_is_reported_too() -> None:
    problem = check_secrets(agent(), secrets={"jwt": {"token"}})
    assert problem is not None
    assert problem.reason == SECRET_NOT_FOUND
    assert "Secret 'jwt' has no key 'key'" in problem.message


@pytest.mark.parametrize(
    "schema",
    [
        {
            "type": "object",
            "properties": {"priority": {"type": "string", "enum": ["low", "high"]}},
            "required": ["priority"],
        },
        {"type": "object"},
    ],
)
def test_a_valid_output_schema_passes(schema: dict[str, Any]) -> None:
    assert check_output_schema(agent(agent={"model": "test", "outputSchema": schema})) is None


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        ({"type": "object", "properties": {"priority": {"type": "strnig"}}}, "properties/priority/type"),
        ({"type": "object", "required": "priority"}, "required"),
        ({"type": "object", "properties": {"n": {"minimum": "zero"}}}, "properties/n/minimum"),
    ],
)
def test_an_invalid_output_schema_is_refused_with_its_location(schema: dict[str, Any], where: str) -> None:
    problem = check_output_schema(agent(agent={"model": "test", "outputSchema": schema}))
    assert problem is not None
    assert problem.reason == INVALID_OUTPUT_SCHEMA
    assert problem.message.startswith(f"spec.agent.outputSchema at {where}:")


@pytest.mark.parametrize(
    "model",
    [
        "test",
        "openai:gpt-4o-mini",
        "openai-chat:gpt-4o-mini",
        "ollama:llama3.2",
        "anthropic:claude-sonnet-4-5",
        "groq:llama-3.3-70b",
    ],
)
def test_models_of_providers_pydantic_ai_knows_pass(model: str) -> None:
    assert check_provider(agent(agent={"model": model})) is None


def test_an_unknown_provider_is_refused() -> None:
    problem = check_provider(agent(agent={"model": "acme-llm:large"}))
    assert problem is not None
    assert problem.reason == UNKNOWN_MODEL_PROVIDER
    assert "'acme-llm'" in problem.message


def test_spec_checks_report_the_schema_before_the_provider() -> None:
    both = agent(agent={"model": "acme-llm:large", "outputSchema": {"type": "object", "required": 1}})
    problem = check_spec(both)
    assert problem is not None
    assert problem.reason == INVALID_OUTPUT_SCHEMA
    assert check_spec(agent()) is None


def _foreign(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "team-a"}}


def test_children_that_are_absent_or_owned_pass_the_ownership_check() -> None:
    owner = Owner(name="triage", uid="u-1")
    ours = {"metadata": {"name": "triage", "ownerReferences": [{"uid": "u-1", "controller": True}]}}
    assert check_ownership([("ServiceAccount", None), ("Deployment", ours)], owner=owner) is None


def test_every_taken_name_is_reported_in_one_problem() -> None:
    stored = [("ConfigMap", _foreign("triage-config")), ("Service", _foreign("triage")), ("Deployment", None)]
    problem = check_ownership(stored, owner=Owner(name="triage", uid="u-1"))
    assert problem is not None
    assert problem.reason == RESOURCE_CONFLICT
    assert "ConfigMap team-a/triage-config already exists and is not managed by Agentry" in problem.message
    assert "Service team-a/triage already exists" in problem.message
    assert "Deployment" not in problem.message
