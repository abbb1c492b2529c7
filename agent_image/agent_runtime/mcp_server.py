"""One MCP server of the spec on pydantic-ai's MCP client: its connection, and the toolset a run gets from it.

Every wait on the server (connecting, listing tools, a tool call, a ping) is bounded by the toolset's
timeoutSeconds, and every failure that is the server's rather than the model's becomes an McpToolsetError
that ends the run: a retry prompt would only make the model call a server that is down again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

from fastmcp.client.transports import ClientTransport, SSETransport, StreamableHttpTransport
from fastmcp.exceptions import McpError  # pyright: ignore[reportPrivateImportUsage]
from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT
from pydantic_ai import ApprovalRequired, CallDeferred, ModelRetry, RunContext, ToolFailed
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.toolsets import AbstractToolset, FilteredToolset, PrefixedToolset, WrapperToolset
from pydantic_ai.toolsets.abstract import ToolsetTool

from agentry_api.v1alpha1 import McpToolsetSpec

from .mcp_errors import McpFailure, McpToolsetError
from .services.protocols import ServiceHealth

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds the MCP client's own timeouts wait beyond timeoutSeconds, so the runtime's fire first and say which.
CLIENT_TIMEOUT_SLACK = 1.0
#: Exceptions a tool raises for pydantic-ai to act on (ask the model again, defer, ask approval): not failures.
CONTROL_FLOW = (ModelRetry, ToolFailed, CallDeferred, ApprovalRequired)


@dataclass
class McpServer:
    """An MCP server with its headers; connected once and shared by runs, unless it forwards the caller's token.

    A shared connection that breaks is dropped, and the next run (or health check) connects again, so a
    server that restarts costs the runs in flight, not every run after them.
    """

    name: str
    spec: McpToolsetSpec
    headers: dict[str, str] = field(repr=False)
    max_retries: int
    _live: MCPToolset[Any] | None = field(default=None, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _leaving: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    @property
    def timeout(self) -> float:
        """Seconds for each wait on the server."""
        return self.spec.timeout_seconds

    async def connect(self) -> MCPToolset[Any]:
        """The shared connection, opened now when there is none (at start, or after it broke).

        Waiting for another run's attempt counts towards the timeout, so runs queued behind a hanging
        server fail within it too.
        """
        return await self.bounded(self._connect(), doing="connecting")

    async def _connect(self) -> MCPToolset[Any]:
        async with self._lock:
            if self._live is None:
                toolset = self._client(bearer_token=None)
                await toolset.__aenter__()
                self._live = toolset
            return self._live

    async def close(self) -> None:
        """Close the shared connection and any broken one still being left; safe to call twice."""
        live, self._live = self._live, None
        if live is not None:
            await self.leave(live)
        await asyncio.gather(*self._leaving, return_exceptions=True)

    @asynccontextmanager
    async def run_toolset(self, *, bearer_token: str | None) -> AsyncIterator[AbstractToolset[Any]]:
        """The toolset of one run: the shared connection, or a session of the run's own with the caller's token."""
        if not self.spec.forward_bearer_token:
            yield self._wrap(await self.connect())
            return
        if not bearer_token:
            raise self._error("no_token", _WHAT["no_token"])
        toolset = self._client(bearer_token=bearer_token)
        await self.bounded(toolset.__aenter__(), doing="connecting")
        try:
            yield self._wrap(toolset)
        finally:
            await self.leave(toolset)

    async def check(self, *, timeout: float) -> ServiceHealth:
        """List the tools on the shared connection (connecting when there is none); for a forwarding server, reach it.

        A forwarding server has no session outside a run (it needs a caller's token), so reaching it is all
        a check can prove. Never raises: a server that is down or slow is degraded.
        """
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                detail = await (self._reach() if self.spec.forward_bearer_token else self._list())
        except TimeoutError:
            return ServiceHealth(name=f"mcp:{self.name}", state="degraded", detail=f"no answer within {timeout:g}s")
        except McpToolsetError as exc:
            return ServiceHealth(name=f"mcp:{self.name}", state="degraded", detail=exc.message)
        except OSError as exc:
            return ServiceHealth(name=f"mcp:{self.name}", state="degraded", detail=f"cannot reach: {exc.strerror}")
        latency = (time.perf_counter() - started) * 1000
        return ServiceHealth(name=f"mcp:{self.name}", state="ok", detail=detail, latency_ms=latency)

    async def bounded(self, step: Awaitable[T], *, doing: str, live: MCPToolset[Any] | None = None) -> T:
        """Await one step on the server within the timeout; its failures become McpToolsetError.

        A shared connection (`live`) that fails for want of a connection is dropped for the next run.
        """
        try:
            async with asyncio.timeout(self.timeout):
                return await step
        except TimeoutError:
            raise self._error("timeout", _WHAT["timeout"].format(doing=doing, timeout=self.timeout)) from None
        except CONTROL_FLOW as exc:
            if not isinstance(exc, ModelRetry) or _mcp_code(exc.__cause__) not in (CONNECTION_CLOSED, REQUEST_TIMEOUT):
                raise
            failure = _failure(exc.__cause__)
        except Exception as exc:
            failure = _failure(exc)
            log.warning("MCP toolset %s: %s failed: %s", self.name, doing, type(exc).__name__)
        if live is not None and failure == "unavailable":
            self._drop(live)
        raise self._error(failure, _WHAT[failure].format(doing=doing, timeout=self.timeout)) from None

    def _client(self, *, bearer_token: str | None) -> MCPToolset[Any]:
        url = str(self.spec.url)
        transport: ClientTransport
        if self.spec.transport == "sse":
            transport = SSETransport(url, headers=dict(self.headers), auth=bearer_token)
        else:
            transport = StreamableHttpTransport(url, headers=dict(self.headers), auth=bearer_token)
        client_timeout = self.timeout + CLIENT_TIMEOUT_SLACK
        return MCPToolset(
            transport,
            id=self.name,
            max_retries=self.max_retries,
            init_timeout=client_timeout,
            read_timeout=client_timeout,
        )

    def _wrap(self, toolset: MCPToolset[Any]) -> AbstractToolset[Any]:
        """Bounded, then filtered by the allow-list (the model never sees the others), then prefixed."""
        shared = None if self.spec.forward_bearer_token else toolset
        wrapped: AbstractToolset[Any] = BoundedToolset(toolset, server=self, live=shared)
        allowed = self.spec.allowed_tools
        if allowed is not None:
            names = frozenset(allowed)
            wrapped = FilteredToolset(wrapped, lambda ctx, tool_def: tool_def.name in names)
        if self.spec.tool_prefix:
            wrapped = PrefixedToolset(wrapped, self.spec.tool_prefix)
        return wrapped

    async def _list(self) -> str:
        """A tools/list round trip, past the client's cache: the one request every MCP version answers (no ping)."""
        toolset = await self.connect()
        tools = await self.bounded(toolset.client.list_tools(), doing="the tool listing", live=toolset)
        return f"{len(tools)} tools over {self.spec.transport}"

    async def _reach(self) -> str:
        url = urlsplit(str(self.spec.url))
        port = url.port or (443 if url.scheme == "https" else 80)
        _, writer = await asyncio.open_connection(url.hostname, port)
        writer.close()
        await writer.wait_closed()
        return "reachable; sessions are per run, with the caller's token"

    def _drop(self, toolset: MCPToolset[Any]) -> None:
        """Forget a broken shared connection and leave it in the background: the failing run must not wait."""
        if self._live is toolset:
            self._live = None
            task = asyncio.create_task(self.leave(toolset))
            self._leaving.add(task)
            task.add_done_callback(self._leaving.discard)

    async def leave(self, toolset: AbstractToolset[Any]) -> None:
        """Leave a session within the timeout; a failure to close is logged, never raised."""
        try:
            async with asyncio.timeout(self.timeout):
                await toolset.__aexit__(None, None, None)
        except Exception as exc:
            log.warning("MCP toolset %s: closing the session failed: %s", self.name, type(exc).__name__)

    def _error(self, failure: McpFailure, message: str) -> McpToolsetError:
        return McpToolsetError(toolset=self.name, failure=failure, message=message)


@dataclass
class BoundedToolset(WrapperToolset[Any]):
    """Listing and calling tools within the timeout; a server failure ends the run (McpServer.bounded)."""

    server: McpServer = field(kw_only=True)
    live: MCPToolset[Any] | None = field(kw_only=True)

    async def __aenter__(self) -> Self:
        """Entered by the run: a no-op on a connected session, a bounded reconnect on one a failure closed."""
        await self.server.bounded(self.wrapped.__aenter__(), doing="connecting", live=self.live)
        return self

    async def __aexit__(self, *args: Any) -> bool | None:
        """Left by the run; closing a broken session fails, and must not replace the run's own error."""
        await self.server.leave(self.wrapped)
        return None

    async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:
        """The server's tools (cached by the client after the first listing)."""
        return await self.server.bounded(super().get_tools(ctx), doing="the tool listing", live=self.live)

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        """Call the tool; the tool's own errors still go back to the model to retry."""
        step = super().call_tool(name, tool_args, ctx, tool)
        return await self.server.bounded(step, doing=f"the call of {name}", live=self.live)


#: What the caller is told, by failure: the step, never the exception's text (it may quote the server).
_WHAT: dict[McpFailure, str] = {
    "unavailable": "is unavailable: {doing} failed, its server cannot be reached",
    "refused": "is refused: its server answered {doing} with an error",
    "timeout": "is too slow: {doing} took longer than {timeout:g}s",
    "no_token": "forwards the caller's bearer token, and the request has none",
}


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
