"""A stand-in external API: a Starlette app whose answers the test scripts (ok, 5xx, slow)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass
class Script:
    """What the stand-in answers next: `failures` 503s, then ok; every answer after `delay` seconds."""

    failures: int = 0
    delay: float = 0.0
    calls: list[str] = field(default_factory=list)
    traceparents: list[str | None] = field(default_factory=list)
    """The `traceparent` header of each call (None when it had none)."""


def upstream_app(script: Script) -> Starlette:
    """The stand-in app; `/status/{code}` always answers that code."""

    async def anything(request: Request) -> JSONResponse:
        script.calls.append(request.url.path)
        script.traceparents.append(request.headers.get("traceparent"))
        await asyncio.sleep(script.delay)
        if script.failures > 0:
            script.failures -= 1
            return JSONResponse({"error": "unavailable"}, status_code=503)
        return JSONResponse({"path": request.url.path, "ok": True})

    async def status(request: Request) -> JSONResponse:
        script.calls.append(request.url.path)
        return JSONResponse({"code": request.path_params["code"]}, status_code=int(request.path_params["code"]))

    return Starlette(
        routes=[Route("/status/{code:int}", status), Route("/{path:path}", anything, methods=["GET", "POST"])]
    )
