"""The agent a runtime serves and the options of each of its runs, from the spec's `agent` section.

A declarative agent is built here; a user's agent comes from its code (usercode.py). Both are then run the same
way (execution.py), with what the spec sets for every run: a model override, sampling settings, usage limits,
the output schema and Agentry's toolsets.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx2
import jsonschema
from pydantic_ai import Agent, ModelRetry, RunContext, StructuredDict
from pydantic_ai.models import Model, create_async_httpx2_client, infer_model
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.output import ToolOutput
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import UsageLimits

from agentry_api.outputschema import model_schema, output_validator
from agentry_api.v1alpha1 import AgentSpec, EndpointSpec

from .sdk import AgentApp, AgentryDeps

#: Name of the output tool an output schema gives the model (pydantic-ai's own default name).
OUTPUT_TOOL = "final_result"


@dataclass(frozen=True)
class RunOptions:
    """What the spec sets on every run, whichever kind of agent it is."""

    model: Model | None
    """The model to use; None keeps the agent's own (a code agent without spec.agent.model)."""
    model_settings: ModelSettings
    usage_limits: UsageLimits
    output_type: ToolOutput[dict[str, Any]] | None
    """The schema-checked output, when spec.agent.outputSchema is set; None keeps the agent's output type."""


def declarative_agent(spec: AgentSpec) -> AgentApp[AgentryDeps]:
    """The agent of a declarative spec: its instructions, text output (the schema comes per run), no tools of its own.

    Its model is set per run (`run_options`), so a user's agent and this one take the same path.
    """
    agent: Agent[AgentryDeps, Any] = Agent(
        None, output_type=str, instructions=spec.instructions or None, deps_type=AgentryDeps
    )
    return AgentApp(agent=agent)


def run_options(
    *,
    spec: AgentSpec,
    api_key: str | None,
    model: Model | None = None,
    transport: httpx2.AsyncBaseTransport | None = None,
) -> RunOptions:
    """The per-run options; `model` replaces the one the spec names (tests script the model's turns).

    `transport` carries an endpoint model's requests (traced, when tracing is on).
    """
    return RunOptions(
        model=model or build_model(spec=spec, api_key=api_key, transport=transport),
        model_settings=model_settings(spec),
        usage_limits=usage_limits(spec),
        output_type=schema_output(spec.output_schema, retries=spec.output_retries) if spec.output_schema else None,
    )


def build_model(
    *, spec: AgentSpec, api_key: str | None, transport: httpx2.AsyncBaseTransport | None = None
) -> Model | None:
    """TestModel for `test`; an OpenAI-compatible model at `endpoint`; else pydantic-ai's model for the string.

    The model is made now, so an unknown provider (UserError) stops the start rather than the first run. The
    offline TestModel calls no tools, so `test` answers the same way whatever services are wired.
    """
    if spec.model is None:
        return None
    if spec.model == "test":
        return TestModel(call_tools=[])
    if spec.endpoint is not None:
        return _endpoint_model(model=spec.model, endpoint=spec.endpoint, api_key=api_key, transport=transport)
    return infer_model(spec.model)


def _endpoint_model(
    *, model: str, endpoint: EndpointSpec, api_key: str | None, transport: httpx2.AsyncBaseTransport | None
) -> Model:
    # pydantic-ai's own client (its timeouts and user agent), on a transport of ours when there is one.
    client = None if transport is None else create_async_httpx2_client(transport=transport)
    provider = OpenAIProvider(base_url=endpoint.base_url, api_key=api_key, http_client=client)
    kind, name = model.split(":", 1)
    if kind == "openai-responses":
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


def schema_output(schema: dict[str, Any], *, retries: int) -> ToolOutput[dict[str, Any]]:
    """An output tool whose arguments are the JSON Schema's object, checked before the run may end.

    StructuredDict only gives the model the schema; it accepts any object. The check is the contract's, so
    outputs are judged under the draft the operator's check accepted, and no `$ref` is ever fetched. The
    message of the first error (with its path) goes back to the model, up to `retries` times, so the retry has
    something to fix. Passed per run, it replaces the output type of a user's agent too.
    """
    checked = schema_check(schema)
    answer = StructuredDict(model_schema(schema))

    async def final_result(ctx: RunContext[Any], output: dict[str, Any]) -> dict[str, Any]:
        return await checked(ctx, output)

    # The parameter's type is what pydantic-ai turns into the tool's schema (annotations are strings here).
    final_result.__annotations__ = {"ctx": RunContext[Any], "output": answer, "return": dict[str, Any]}

    description = schema.get("description") or "The final answer, matching the output schema."
    return ToolOutput(final_result, name=OUTPUT_TOOL, description=description, max_retries=retries)


def schema_check(schema: dict[str, Any]) -> Callable[[RunContext[Any], dict[str, Any]], Awaitable[dict[str, Any]]]:
    """The check itself: the output, or ModelRetry with the first error at its path."""
    validator = output_validator(schema)

    async def validate(ctx: RunContext[Any], output: dict[str, Any]) -> dict[str, Any]:
        error = jsonschema.exceptions.best_match(validator.iter_errors(output))
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path) or "(root)"
            raise ModelRetry(f"output does not match the schema at {where}: {error.message}")
        return output

    return validate
