"""A real MCP server (FastMCP over streamable HTTP or SSE) for the runtime's MCP tests and benchmark."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server.dependencies import fastmcp_request_ctx, get_http_headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

#: The header the server insists on when it is given a key, and the test Secret's value.
KEY_HEADER = "X-Api-Key"
API_KEY = "mcp-key-0123456789"


@dataclass
class Seen:
    """What the server saw: the tools called, and the Authorization header of each call."""

    calls: list[str] = field(default_factory=list)
    authorization: list[str | None] = field(default_factory=list)
    traceparents: list[str | None] = field(default_factory=list)
    """The `traceparent` in the `_meta` of each `traceparent` call (MCP's trace context)."""


def mcp_app(
    seen: Seen, *, transport: Literal["http", "sse"] = "http", api_key: str | None = None, hang_seconds: float = 5.0
) -> ASGIApp:
    """The server's ASGI app at /mcp; tools `add`, `whoami`, `hang`, `traceparent`, `find_ticket`, `delete_everything`.

    With `api_key`, every request without `X-Api-Key: <api_key>` is answered 401, before MCP sees it.
    """
    server = FastMCP("agentry-test")

    @server.tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        seen.calls.append("add")
        return a + b

    @server.tool
    def whoami() -> str:
        """The Authorization header this call came with."""
        authorization = get_http_headers(include={"authorization"}).get("authorization")
        seen.calls.append("whoami")
        seen.authorization.append(authorization)
        return authorization or "anonymous"

    @server.tool
    async def hang() -> str:
        """Answer only after a long while (a server that hangs)."""
        seen.calls.append("hang")
        await asyncio.sleep(hang_seconds)
        return "late"

    @server.tool
    def traceparent() -> str:
        """The trace context this call came with (`_meta.traceparent`, as MCP passes it on)."""
        request = fastmcp_request_ctx.get()
        sent = None if request is None or request.meta is None else request.meta.get("traceparent")
        seen.calls.append("traceparent")
        seen.traceparents.append(sent)
        return str(sent)

    @server.tool
    def find_ticket(ticket_id: str) -> str:
        """A tool that fails the way tools do: the model is told why and may try again."""
        seen.calls.append("find_ticket")
        raise ToolError(f"no ticket {ticket_id}")

    @server.tool
    def delete_everything() -> str:
        """A tool no agent is allowed to call."""
        seen.calls.append("delete_everything")
        return "deleted"

    middleware = [Middleware(RequireKey, key=api_key)] if api_key else []
    return server.http_app(path="/mcp", transport=transport, middleware=middleware)


class RequireKey:
    """ASGI middleware refusing requests without the API key header (a server checking its Secret)."""

    def __init__(self, app: ASGIApp, *, key: str) -> None:
        self.app = app
        self.key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and Request(scope).headers.get(KEY_HEADER) != self.key:
            response: Response = JSONResponse({"error": "missing or wrong API key"}, status_code=401)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


@asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """A TCP server that accepts connections and never answers: an MCP server that hangs. Yields its /mcp URL."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
