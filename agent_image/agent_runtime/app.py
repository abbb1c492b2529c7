"""The Starlette application of one runtime: routes, JSON errors, and the lifespan that starts and stops it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentry_api.v1alpha1 import Protocol

from .cors import CorsMiddleware, CorsPolicy
from .envelope import Envelope
from .errors import ApiError
from .openai_api import openai_routes
from .openai_wire import openapi_part
from .openapi import openapi_document
from .ops import ops_routes
from .routes import v1_routes
from .runtime import Runtime

log = logging.getLogger("agentry.runtime")

#: Version reported in the OpenAPI document.
API_VERSION = "v1"


def build_app(runtime: Runtime) -> Starlette:
    """The app; its lifespan starts the runtime before the first request and stops it after the last."""
    envelope = Envelope(runtime)
    routes = [*v1_routes(envelope), *ops_routes(envelope)]
    protocol_paths: dict[str, Any] = {}
    protocol_schemas: dict[str, Any] = {}
    protocols = runtime.config.spec.protocols
    if Protocol.OPENAI in protocols:
        routes += openai_routes(envelope)
        paths, schemas = openapi_part(
            model=runtime.config.name, structured=runtime.config.spec.agent.output_schema is not None
        )
        protocol_paths |= paths
        protocol_schemas |= schemas
    if Protocol.AG_UI in protocols:
        from .agui import agui_paths, agui_routes  # the AG-UI types load only for an agent that serves them

        routes += agui_routes(envelope)
        protocol_paths |= agui_paths()
    if Protocol.A2A in protocols:
        from .a2a import a2a_openapi, a2a_routes  # fasta2a loads only for an agent that serves A2A

        routes += a2a_routes(envelope)
        protocol_paths |= a2a_openapi(runtime.config)
    document = openapi_document(
        title=f"Agentry agent {runtime.config.namespace}/{runtime.config.name}",
        version=API_VERSION,
        settings=runtime.settings,
        metrics_need_token=runtime.config.spec.security.metrics.require_auth,
        protocol_paths=protocol_paths,
        protocol_schemas=protocol_schemas,
    )

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await runtime.start()
        except Exception as exc:
            # One readable line first; uvicorn then logs the traceback and exits with code 3.
            log.error("start-up failed: %s", exc)
            raise
        try:
            yield
        finally:
            await runtime.stop()

    routes.append(Route("/openapi.json", openapi, methods=["GET"]))
    origins = runtime.config.spec.security.allowed_origins
    middleware = [Middleware(CorsMiddleware, policy=CorsPolicy.of(origins), routes=routes)] if origins else []
    app = Starlette(
        routes=routes, middleware=middleware, exception_handlers={HTTPException: _http_error}, lifespan=lifespan
    )
    app.state.runtime = runtime
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 in the API's error shape, keeping its headers (Allow on a 405)."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    kinds = {404: "not_found", 405: "method_not_allowed"}
    message = f"{request.method} {request.url.path}: {exc.detail if isinstance(exc, HTTPException) else 'error'}"
    headers = exc.headers if isinstance(exc, HTTPException) else None
    return ApiError(status, kinds.get(status, "http_error"), message, headers=headers).response()
