"""Build the pydantic-ai Agent that a runtime serves, from the spec's `agent` section."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import jsonschema
from pydantic_ai import Agent, ModelRetry, RunContext, StructuredDict
from pydantic_ai.models import Model
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import UsageLimits

from agentry_api.outputschema import model_schema, output_validator
from agentry_api.v1alpha1 import AgentSpec, EndpointSpec

from .deps import Deps
from .tools import build_toolset

RuntimeAgent = Agent[Deps, Any]
OutputValidator = Callable[[RunContext[Deps], dict[str, Any]], Awaitable[dict[str, Any]]]


def build_agent(
    *, spec: AgentSpec, api_key: str | None, with_external_api: bool, model: Model | None = None
) -> RuntimeAgent:
    """The agent with its model, instructions, output type, settings and tools.

    `model` replaces the one the spec names; tests pass a FunctionModel to script the model's turns.
    """
    agent: RuntimeAgent = Agent(
        model or build_model(spec=spec, api_key=api_key),
        output_type=StructuredDict(model_schema(spec.output_schema)) if spec.output_schema else str,
        instructions=spec.instructions or None,
        deps_type=Deps,
        model_settings=model_settings(spec),
        retries={"tools": spec.retries, "output": spec.output_retries},
        toolsets=[build_toolset(with_external_api=with_external_api, max_retries=spec.retries)],
    )
    if spec.output_schema:
        agent.output_validator(schema_validator(spec.output_schema))
    return agent


def build_model(*, spec: AgentSpec, api_key: str | None) -> Model | str:
    """TestModel for `test`; an OpenAI-compatible model at `endpoint`; else the model string as is.

    The offline TestModel calls no tools, so `test` answers the same way whatever services are wired.
    """
    if spec.model == "test":
        return TestModel(call_tools=[])
    if spec.endpoint is not None:
        return _endpoint_model(spec=spec, endpoint=spec.endpoint, api_key=api_key)
    return spec.model


def _endpoint_model(*, spec: AgentSpec, endpoint: EndpointSpec, api_key: str | None) -> Model:
    provider = OpenAIProvider(base_url=endpoint.base_url, api_key=api_key)
    name = spec.model.split(":", 1)[1]
    if spec.provider == "openai-responses":
        return OpenAIResponsesModel(name, provider=provider)
    return OpenAIChatModel(name, provider=provider)


def model_settings(spec: AgentSpec) -> ModelSettings:
    """The spec's sampling settings, leaving out what it does not set (the provider's defaults apply)."""
    source = spec.model_settings
    settings = ModelSettings()
    if source.temperature is not None:
        settings["temperature"] = source.temperature
    if source.max_tokens is not None:
        settings["max_tokens"] = source.max_tokens
    if source.top_p is not None:
        settings["top_p"] = source.top_p
    if source.seed is not None:
        settings["seed"] = source.seed
    if source.timeout_seconds is not None:
        settings["timeout"] = source.timeout_seconds
    return settings


def usage_limits(spec: AgentSpec) -> UsageLimits:
    """The per-run limits; a run that would pass one fails with UsageLimitExceeded."""
    limits = spec.usage_limits
    return UsageLimits(
        request_limit=limits.request_limit,
        tool_calls_limit=limits.tool_calls_limit,
        input_tokens_limit=limits.input_tokens_limit,
        output_tokens_limit=limits.output_tokens_limit,
        total_tokens_limit=limits.total_tokens_limit,
    )


def schema_validator(schema: dict[str, Any]) -> OutputValidator:
    """An output validator that checks the output against the JSON Schema and asks the model again.

    StructuredDict only gives the model the schema; it accepts any object. The validator is the contract's,
    so outputs are judged under the draft the operator's check accepted, and no `$ref` is ever fetched.
    The message of the first error (with its path) goes back to the model, so the retry has something to fix.
    """
    validator = output_validator(schema)

    async def validate(ctx: RunContext[Deps], output: dict[str, Any]) -> dict[str, Any]:
        error = jsonschema.exceptions.best_match(validator.iter_errors(output))
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path) or "(root)"
            raise ModelRetry(f"output does not match the schema at {where}: {error.message}")
        return output

    return validate
