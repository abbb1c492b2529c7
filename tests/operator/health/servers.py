"""Real /health servers on loopback addresses, standing in for agent pods in the health tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HealthServers:
    """Starts aiohttp servers that answer GET /health; all are stopped when the `serving()` block ends."""

    def __init__(self, stack: AsyncExitStack) -> None:
        self._stack = stack

    async def start(self, handler: Handler, *, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve `handler` at host:port (0 picks a free port) and return the port."""
        app = web.Application()
        app.router.add_get("/health", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        self._stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, host, port)
        await site.start()
        assert site._server is not None
        bound: int = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return bound


@asynccontextmanager
async def serving() -> AsyncIterator[HealthServers]:
    """A scope for health servers."""
    async with AsyncExitStack() as stack:
        yield HealthServers(stack)
