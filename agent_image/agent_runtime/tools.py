"""Agentry's built-in tools: reading stored results, a scratch cache, and the configured external API.

The tools close over the runtime's services rather than reading `RunContext.deps`, so the same toolset serves a
declarative agent and a user's agent whatever its deps type. Failures a model can act on (unknown id, an API that
is down) come back as text for the model to read, not as exceptions that would end the run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from pydantic_ai.toolsets import FunctionToolset

from .services.breaker import CircuitOpenError
from .services.container import Services
from .services.http import ExternalApiError

#: Prefix of cache keys written by tools, so a model can never overwrite the runtime's own entries.
TOOL_CACHE_PREFIX = "tool:"
#: Largest response body of the external API handed to the model, in characters.
MAX_API_BODY_CHARS = 20_000
#: Every built-in tool, in the order the model sees them (the contract's BuiltinTool names).
BUILTIN_TOOLS = ("lookup_result", "cache_get", "cache_set", "call_external_api")


def builtin_tools(services: Services) -> dict[str, Any]:
    """The built-in tools bound to `services`, by name; call_external_api only when an API is configured."""

    async def lookup_result(run_id: str) -> dict[str, Any] | str:
        """Fetch a previous run's stored (anonymised) result by its run id."""
        stored = await services.database.get_result(run_id)
        return dict(stored) if stored is not None else f"no result with id {run_id}"

    async def cache_get(key: str) -> str | None:
        """Read a value this agent cached earlier; None when absent or expired."""
        return await services.cache.get(TOOL_CACHE_PREFIX + key)

    async def cache_set(key: str, value: str, ttl_seconds: int | None = None) -> str:
        """Cache a value for later runs; without ttl_seconds the cache's default TTL applies."""
        await services.cache.set(TOOL_CACHE_PREFIX + key, value, ttl_seconds=ttl_seconds)
        return "stored"

    async def call_external_api(
        path: str, method: Literal["GET", "POST"] = "GET", body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Call the configured external API at `path` (relative to its base URL) and return status and body."""
        api = services.external_api
        if api is None:
            return {"error": "no external API is configured"}
        try:
            response = await api.request(method, path, json=body)
        except (CircuitOpenError, ExternalApiError) as exc:
            return {"error": str(exc)}
        return {"status": response.status_code, "body": _body(response.text)}

    tools: dict[str, Any] = {
        "lookup_result": lookup_result,
        "cache_get": cache_get,
        "cache_set": cache_set,
    }
    if services.external_api is not None:
        tools["call_external_api"] = call_external_api
    return tools


def _body(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text[:MAX_API_BODY_CHARS]


def builtin_toolset(
    services: Services, *, names: Sequence[str] | None = None, max_retries: int = 1
) -> FunctionToolset[Any]:
    """The built-in tools `names` names (all when None) that the services allow, with the spec's retries."""
    available = builtin_tools(services)
    chosen = [available[name] for name in (names or BUILTIN_TOOLS) if name in available]
    return FunctionToolset(chosen, max_retries=max_retries)
