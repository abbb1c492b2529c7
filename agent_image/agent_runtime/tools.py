"""The agent's tools: reading stored results, a scratch cache, and the configured external API.

Failures a model can act on (unknown id, an API that is down) come back as text for the model to read,
not as exceptions that would end the run.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic_ai import RunContext
from pydantic_ai.toolsets import FunctionToolset

from .deps import Deps
from .services.breaker import CircuitOpenError
from .services.http import ExternalApiError

#: Prefix of cache keys written by tools, so a model can never overwrite the runtime's own entries.
TOOL_CACHE_PREFIX = "tool:"
#: Largest response body of the external API handed to the model, in characters.
MAX_API_BODY_CHARS = 20_000


async def lookup_result(ctx: RunContext[Deps], run_id: str) -> dict[str, Any] | str:
    """Fetch a previous run's stored (anonymised) result by its run id."""
    stored = await ctx.deps.database.get_result(run_id)
    return dict(stored) if stored is not None else f"no result with id {run_id}"


async def cache_get(ctx: RunContext[Deps], key: str) -> str | None:
    """Read a value this agent cached earlier; None when absent or expired."""
    return await ctx.deps.cache.get(TOOL_CACHE_PREFIX + key)


async def cache_set(ctx: RunContext[Deps], key: str, value: str, ttl_seconds: int | None = None) -> str:
    """Cache a value for later runs; without ttl_seconds the cache's default TTL applies."""
    await ctx.deps.cache.set(TOOL_CACHE_PREFIX + key, value, ttl_seconds=ttl_seconds)
    return "stored"


async def call_external_api(
    ctx: RunContext[Deps], path: str, method: Literal["GET", "POST"] = "GET", body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Call the configured external API at `path` (relative to its base URL) and return status and body."""
    api = ctx.deps.external_api
    if api is None:
        return {"error": "no external API is configured"}
    try:
        response = await api.request(method, path, json=body)
    except (CircuitOpenError, ExternalApiError) as exc:
        return {"error": str(exc)}
    return {"status": response.status_code, "body": _body(response.text)}


def _body(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text[:MAX_API_BODY_CHARS]


def build_toolset(*, with_external_api: bool, max_retries: int) -> FunctionToolset[Deps]:
    """The tools for this agent; `call_external_api` only when the spec configures an API."""
    tools: list[Any] = [lookup_result, cache_get, cache_set]
    if with_external_api:
        tools.append(call_external_api)
    return FunctionToolset(tools, max_retries=max_retries)
