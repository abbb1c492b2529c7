"""One MCP server of the spec on pydantic-ai's MCP client: its shared connection, and the toolset a run gets."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from fastmcp.client.transports import ClientTransport, SSETransport, StreamableHttpTransport
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.toolsets import AbstractToolset, FilteredToolset, PrefixedToolset

from agentry_api.v1alpha1 import McpToolsetSpec

from .mcp_calls import WHAT, BoundedToolset, bounded, leave
from .mcp_errors import McpToolsetError
from .services.protocols import ServiceHealth

T = TypeVar("T")

#: Seconds the MCP client's own timeouts wait beyond timeoutSeconds, so the runtime's fire first and say which.
CLIENT_TIMEOUT_SLACK = 1.0


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
        return await self._bounded(self._connect(), doing="connecting")

    async def close(self) -> None:
        """Close the shared connection and any broken one still being left; safe to call twice."""
        live, self._live = self._live, None
        if live is not None:
            await leave(live, toolset=self.name, timeout=self.timeout)
        await asyncio.gather(*self._leaving, return_exceptions=True)

    @asynccontextmanager
    async def run_toolset(self, *, bearer_token: str | None) -> AsyncIterator[AbstractToolset[Any]]:
        """The toolset of one run: the shared connection, or a session of the run's own with the caller's token."""
        if not self.spec.forward_bearer_token:
            live = await self.connect()
            yield self._wrap(live, on_broken=functools.partial(self._drop, live))
            return
        if not bearer_token:
            raise McpToolsetError(toolset=self.name, failure="no_token", message=WHAT["no_token"])
        session = self._client(bearer_token=bearer_token)
        await self._bounded(session.__aenter__(), doing="connecting")
        try:
            yield self._wrap(session, on_broken=None)
        finally:
            await leave(session, toolset=self.name, timeout=self.timeout)

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

    async def _connect(self) -> MCPToolset[Any]:
        async with self._lock:
            if self._live is None:
                toolset = self._client(bearer_token=None)
                await toolset.__aenter__()
                self._live = toolset
            return self._live

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

    def _wrap(self, session: MCPToolset[Any], *, on_broken: Callable[[], None] | None) -> AbstractToolset[Any]:
        """Bounded, then filtered by the allow-list (the model never sees the others), then prefixed."""
        wrapped: AbstractToolset[Any] = BoundedToolset(
            session, toolset=self.name, timeout=self.timeout, on_broken=on_broken
        )
        allowed = self.spec.allowed_tools
        if allowed is not None:
            names = frozenset(allowed)
            wrapped = FilteredToolset(wrapped, lambda ctx, tool_def: tool_def.name in names)
        if self.spec.tool_prefix:
            wrapped = PrefixedToolset(wrapped, self.spec.tool_prefix)
        return wrapped

    async def _list(self) -> str:
        """A tools/list round trip, past the client's cache: the one request every MCP version answers (no ping)."""
        live = await self.connect()
        tools = await self._bounded(live.client.list_tools(), doing="the tool listing", live=live)
        return f"{len(tools)} tools over {self.spec.transport}"

    async def _reach(self) -> str:
        url = urlsplit(str(self.spec.url))
        port = url.port or (443 if url.scheme == "https" else 80)
        _, writer = await asyncio.open_connection(url.hostname, port)
        writer.close()
        await writer.wait_closed()
        return "reachable; sessions are per run, with the caller's token"

    async def _bounded(self, step: Awaitable[T], *, doing: str, live: MCPToolset[Any] | None = None) -> T:
        try:
            return await bounded(step, toolset=self.name, timeout=self.timeout, doing=doing)
        except McpToolsetError as exc:
            if live is not None and exc.failure == "unavailable":
                self._drop(live)
            raise

    def _drop(self, live: MCPToolset[Any]) -> None:
        """Forget a broken shared connection and leave it in the background: the failing run must not wait."""
        if self._live is live:
            self._live = None
            task = asyncio.create_task(leave(live, toolset=self.name, timeout=self.timeout))
            self._leaving.add(task)
            task.add_done_callback(self._leaving.discard)
