"""API errors: one exception type carrying status, kind and message, and how agent failures map to it.

Every error leaves the server as `{"error": {"type": ..., "message": ...}}`; the `type` is also the
label of the `agentry_errors_total` series, so dashboards and clients see the same words.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping

from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelHTTPError,
    ModelRateLimitError,
    ModelTimeoutError,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
)
from starlette.responses import JSONResponse

from .mcp_errors import McpToolsetError
from .security.principal import REALM

#: Seconds a client is told to wait before retrying a run whose MCP server is down or slow.
MCP_RETRY_AFTER = 5


class ApiError(Exception):
    """An error answered to the client; `retry_after` (seconds) becomes a Retry-After header.

    `headers` are the other headers the status needs (WWW-Authenticate on a 401, Allow on a 405).
    """

    def __init__(
        self,
        status: int,
        kind: str,
        message: str,
        *,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.retry_after = retry_after
        self.headers = dict(headers or {})

    def body(self) -> dict[str, dict[str, str]]:
        """The JSON error body."""
        return {"error": {"type": self.kind, "message": self.message}}

    def response_headers(self) -> dict[str, str]:
        """The headers of the answer, with Retry-After in whole seconds (at least 1) when set."""
        headers = dict(self.headers)
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return headers

    def response(self) -> JSONResponse:
        """The JSON response, with its headers."""
        return JSONResponse(self.body(), status_code=self.status, headers=self.response_headers())


def from_agent_error(exc: BaseException, *, timeout_seconds: float) -> ApiError:
    """The API error for an exception raised while running the agent.

    The model is the agent's upstream: its failures are 502 (bad answer), 503 (rate limited, retry
    later) or 504 (too slow); a run that would exceed the spec's usage limits is refused with 422,
    since retrying the same prompt would exceed them again. An MCP server is an upstream too: down or
    slow is 503 with Retry-After (it may come up), an error answer 502; a forwarding toolset without
    the caller's token is 401.
    """
    if isinstance(exc, ApiError):
        return exc
    mcp = _mcp_error(exc)
    if mcp is not None:
        return _from_mcp_error(mcp)
    if isinstance(exc, UsageLimitExceeded):
        return ApiError(422, "usage_limit_exceeded", str(exc))
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | ModelTimeoutError):
        return ApiError(504, "timeout", f"the request did not finish within {timeout_seconds:g}s")
    if isinstance(exc, ModelRateLimitError):
        return ApiError(503, "model_rate_limited", f"the model provider is rate limiting: {exc}", retry_after=5)
    if isinstance(exc, ModelHTTPError):
        return ApiError(502, "model_error", f"the model endpoint answered HTTP {exc.status_code}")
    if isinstance(exc, ModelAPIError):
        return ApiError(502, "model_error", f"the model endpoint failed: {exc}")
    if isinstance(exc, UnexpectedModelBehavior):
        return ApiError(502, "model_output_invalid", f"the model's output was unusable: {exc.message}")
    return ApiError(500, "internal", "internal error (see the runtime's log)")


def _mcp_error(exc: BaseException) -> McpToolsetError | None:
    """The MCP toolset error, also when a task group of the run wrapped it in an exception group."""
    if isinstance(exc, McpToolsetError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _mcp_error(inner)
            if found is not None:
                return found
    return None


def _from_mcp_error(exc: McpToolsetError) -> ApiError:
    if exc.failure == "no_token":
        return ApiError(401, "unauthenticated", exc.message, headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'})
    if exc.failure == "refused":
        return ApiError(502, "mcp_error", exc.message)
    return ApiError(503, "mcp_unavailable", exc.message, retry_after=MCP_RETRY_AFTER)
