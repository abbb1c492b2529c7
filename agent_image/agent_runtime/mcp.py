"""The spec's MCP toolsets (spec.agent.toolsets[].mcp): started with the runtime, checked by /health, given to runs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

from pydantic_ai.toolsets import AbstractToolset

from .config import RuntimeConfig
from .mcp_errors import McpToolsetError
from .services.protocols import ServiceHealth

if TYPE_CHECKING:
    from .mcp_server import McpServer

log = logging.getLogger(__name__)


class McpToolsets:
    """Every MCP server the spec lists, with its Secret headers, allow-list, prefix and timeout.

    A server that forwards the caller's bearer token (forwardBearerToken) gets a session per run, with
    `Authorization: Bearer <the caller's token>`: callers differ, a session carries one identity, and sharing
    one would let a caller act with another's rights. The other servers are connected once and shared.
    A server that cannot be reached at start does not stop the runtime: it may come up later; /health shows
    it degraded, runs fail with McpToolsetError until then, and a later run (or check) connects again.
    """

    def __init__(self, servers: Sequence[McpServer], *, check_timeout: float | None = None) -> None:
        self.servers = list(servers)
        self.check_timeout = check_timeout
        """Upper bound on a health check and on the wait at start, below each toolset's own timeout: /health answers
        the operator in time, and the pod becomes ready in time."""
        self._connecting: set[asyncio.Task[None]] = set()

    @classmethod
    def from_config(cls, config: RuntimeConfig, *, check_timeout: float | None = None) -> McpToolsets:
        """The servers of the spec, headers resolved from the config's secrets.

        The MCP client is imported only when the spec lists a server: it takes a second or two to import.
        """
        agent = config.spec.agent
        toolsets = enumerate(agent.toolsets or [])
        listed = [(index, toolset.name, toolset.mcp) for index, toolset in toolsets if toolset.mcp is not None]
        if not listed:
            return cls([], check_timeout=check_timeout)
        from .mcp_server import McpServer

        servers = []
        for index, name, mcp in listed:
            headers = {
                header.name: config.secret(f"spec.agent.toolsets[{index}].mcp.headers[{number}].secretRef") or ""
                for number, header in enumerate(mcp.headers)
            }
            servers.append(McpServer(name=name, spec=mcp, headers=headers, max_retries=agent.retries))
        return cls(servers, check_timeout=check_timeout)

    async def start(self) -> None:
        """Connect the shared servers, waiting at most the check timeout: the pod's start never waits on them.

        A connection still under way goes on in the background (within its toolset's timeout); one that fails is
        logged, never raised, and runs connect again.
        """
        shared = [server for server in self.servers if not server.spec.forward_bearer_token]
        self._connecting = {asyncio.create_task(self._connect(server)) for server in shared}
        if self._connecting:
            await asyncio.wait(self._connecting, timeout=self.check_timeout)

    async def close(self) -> None:
        """Stop connecting, close every shared session; safe to call twice."""
        for task in self._connecting:
            task.cancel()
        await asyncio.gather(*self._connecting, return_exceptions=True)
        self._connecting = set()
        await asyncio.gather(*(server.close() for server in self.servers))

    @staticmethod
    async def _connect(server: McpServer) -> None:
        try:
            await server.connect()
        except McpToolsetError as exc:
            log.warning("%s; runs that need it fail until it is up", exc.message)

    async def check(self) -> list[ServiceHealth]:
        """One entry per server (`mcp:<name>`), concurrently; a server down or slow is degraded, never raises."""
        checks = [server.check(timeout=self._check_timeout(server)) for server in self.servers]
        return list(await asyncio.gather(*checks))

    def for_run(self, *, bearer_token: str | None) -> AbstractAsyncContextManager[list[AbstractToolset[Any]]]:
        """The toolsets of one run, connected before the model is asked (a server that is down costs no tokens).

        `bearer_token` is the caller's, for the servers that forward it. Raises McpToolsetError when a server
        cannot serve the run; per-run sessions close when the context ends.
        """
        return self._for_run(bearer_token=bearer_token)

    @asynccontextmanager
    async def _for_run(self, *, bearer_token: str | None) -> AsyncIterator[list[AbstractToolset[Any]]]:
        async with AsyncExitStack() as stack:
            yield [await stack.enter_async_context(s.run_toolset(bearer_token=bearer_token)) for s in self.servers]

    def _check_timeout(self, server: McpServer) -> float:
        if self.check_timeout is None:
            return server.timeout
        return min(server.timeout, self.check_timeout)
