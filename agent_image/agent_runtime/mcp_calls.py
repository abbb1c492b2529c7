"""Waiting on an MCP server within its timeout, and telling the server's failures from the model's.

Every wait on a server (connecting, listing tools, a tool call) is bounded by the toolset's timeoutSeconds, and
every failure that is the server's rather than the model's becomes an McpToolsetError that ends the run: a retry
prompt would only make the model call a server that is down again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

from fastmcp.exceptions import McpError  # pyright: ignore[reportPrivateImportUsage]
from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT
from pydantic_ai import ApprovalRequired, CallDeferred, ModelRetry, RunContext, ToolFailed
from pydantic_ai.toolsets import AbstractToolset, WrapperToolset
from pydantic_ai.toolsets.abstract import ToolsetTool

from .mcp_errors import McpFailure, McpToolsetError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Exceptions a tool raises for pydantic-ai to act on (ask the model again, defer, ask approval): not failures.
CONTROL_FLOW = (ModelRetry, ToolFailed, CallDeferred, ApprovalRequired)
#: What the caller is told, by failure: the step, never the exception's text (it may quote the server).
WHAT: dict[McpFailure, str] = {
    "unavailable": "is unavailable: {doing} failed, its server cannot be reached",
    "refused": "is refused: its server answered {doing} with an error",
    "timeout": "is too slow: {doing} took longer than {timeout:g}s",
    "no_token": "forwards the caller's bearer token, and the request has none",
}


async def bounded(step: Awaitable[T], *, toolset: str, timeout: float, doing: str) -> T:
    """Await one step on the server within `timeout`; its failures become McpToolsetError.

    A tool's own error (a ModelRetry for the model) passes, unless pydantic-ai made it of a lost connection
    or the client's own timeout: those are the server's.
    """
    try:
        async with asyncio.timeout(timeout):
            return await step
    except TimeoutError:
        failure: McpFailure = "timeout"
    except CONTROL_FLOW as exc:
        if not isinstance(exc, ModelRetry) or _mcp_code(exc.__cause__) not in (CONNECTION_CLOSED, REQUEST_TIMEOUT):
            raise
        failure = _failure(exc.__cause__)
    except Exception as exc:
        failure = _failure(exc)
        log.warning("MCP toolset %s: %s failed: %s", toolset, doing, type(exc).__name__)
    message = WHAT[failure].format(doing=doing, timeout=timeout)
    raise McpToolsetError(toolset=toolset, failure=failure, message=message) from None


async def leave(session: AbstractToolset[Any], *, toolset: str, timeout: float) -> None:
    """Leave a session within `timeout`; a failure to close (a broken session) is logged, never raised."""
    try:
        async with asyncio.timeout(timeout):
            await session.__aexit__(None, None, None)
    except Exception as exc:
        log.warning("MCP toolset %s: closing the session failed: %s", toolset, type(exc).__name__)


@dataclass
class BoundedToolset(WrapperToolset[Any]):
    """An MCP toolset whose every wait is bounded; `on_broken` is told when the session lost its server."""

    toolset: str = field(kw_only=True)
    timeout: float = field(kw_only=True)
    on_broken: Callable[[], None] | None = field(kw_only=True, default=None)

    async def __aenter__(self) -> Self:
        """Entered by the run: a no-op on a connected session, a bounded reconnect on one a failure closed."""
        await self._bounded(self.wrapped.__aenter__(), doing="connecting")
        return self

    async def __aexit__(self, *args: Any) -> bool | None:
        """Left by the run; closing a broken session fails, and that must not replace the run's own error."""
        await leave(self.wrapped, toolset=self.toolset, timeout=self.timeout)
        return None

    async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:
        """The server's tools (cached by the client after the first listing)."""
        return await self._bounded(super().get_tools(ctx), doing="the tool listing")

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        """Call the tool; the tool's own errors still go back to the model to retry."""
        return await self._bounded(super().call_tool(name, tool_args, ctx, tool), doing=f"the call of {name}")

    async def _bounded(self, step: Awaitable[T], *, doing: str) -> T:
        try:
            return await bounded(step, toolset=self.toolset, timeout=self.timeout, doing=doing)
        except McpToolsetError as exc:
            if exc.failure == "unavailable" and self.on_broken is not None:
                self.on_broken()
            raise


def _mcp_code(exc: BaseException | None) -> int | None:
    return exc.error.code if isinstance(exc, McpError) else None


def _failure(exc: BaseException | None) -> McpFailure:
    """What an exception of the MCP client means: an error answer is a refusal, the rest a missing connection."""
    code = _mcp_code(exc)
    if code == REQUEST_TIMEOUT:
        return "timeout"
    if code is not None and code != CONNECTION_CLOSED:
        return "refused"
    return "unavailable"
