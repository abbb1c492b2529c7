"""CORS for browser callers of the agent, from spec.security.allowedOrigins (the Fetch standard's protocol).

A preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered here, before any route
and so without a token, since browsers never send credentials with one. An allowed origin gets the
methods of the route it asks about and the request headers the API reads; a refused preflight (origin,
method or header not allowed) gets 403 with no CORS header at all, which browsers report as a CORS
failure. Every other request goes to the app, and its answer gets Access-Control-Allow-Origin only
when the origin is allowed. Credentials (cookies) are never allowed: callers send a bearer token in
the Authorization header, which needs no credentials mode, and `*` with credentials is forbidden.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError

#: Request headers a browser may send beyond the CORS-safelisted ones; the API reads no others.
ALLOWED_HEADERS = ("authorization", "content-type")
#: Response headers a browser script may read beyond the safelisted ones: what a client acts on.
EXPOSED_HEADERS = ("Retry-After", "WWW-Authenticate", "Allow")
#: Seconds a browser may cache a preflight answer (browsers cap it at 2 h or less anyway).
MAX_AGE_SECONDS = 600
#: The answer to some requests depends on these request headers, so caches must key on them.
VARY = "Origin"
PREFLIGHT_VARY = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"


@dataclass(frozen=True)
class CorsPolicy:
    """Which origins may call; `*` admits any origin (and is then what Access-Control-Allow-Origin says)."""

    origins: frozenset[str]
    any_origin: bool

    @classmethod
    def of(cls, allowed_origins: Iterable[str]) -> CorsPolicy:
        """The policy of spec.security.allowedOrigins; origins compare case-insensitively."""
        origins = frozenset(origin.lower() for origin in allowed_origins)
        return cls(origins=origins - {"*"}, any_origin="*" in origins)

    def allow_origin(self, origin: str) -> str | None:
        """The Access-Control-Allow-Origin value for `origin`, or None when it is not allowed."""
        if self.any_origin:
            return "*"
        return origin if origin.lower() in self.origins else None


class CorsMiddleware:
    """ASGI middleware applying a CorsPolicy to every HTTP request of the app."""

    def __init__(self, app: ASGIApp, *, policy: CorsPolicy, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.policy = policy
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer preflights, decorate the answers to requests from allowed origins, pass the rest."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(scope, headers, origin)(scope, receive, send)
            return
        await self.app(scope, receive, self._decorating(send, origin))

    def _preflight(self, scope: Scope, headers: Headers, origin: str) -> ASGIApp:
        allow_origin = self.policy.allow_origin(origin)
        methods = self._methods(scope)
        method = headers["access-control-request-method"]
        requested = _header_names(headers.get("access-control-request-headers", ""))
        if allow_origin is None:
            return _refused("origin is not in spec.security.allowedOrigins")
        if not methods:
            return self.app  # no such path: the app answers 404
        if method not in methods:
            return _refused(f"method {method!r} is not allowed here (allowed: {', '.join(sorted(methods))})")
        if not requested <= set(ALLOWED_HEADERS):
            return _refused(f"request headers not allowed (allowed: {', '.join(ALLOWED_HEADERS)})")
        answer = {
            "Access-Control-Allow-Origin": allow_origin,
            "Access-Control-Allow-Methods": ", ".join(sorted(methods)),
            "Access-Control-Allow-Headers": ", ".join(ALLOWED_HEADERS),
            "Access-Control-Max-Age": str(MAX_AGE_SECONDS),
            "Vary": PREFLIGHT_VARY,
        }
        return Response(status_code=204, headers=answer)

    def _methods(self, scope: Scope) -> set[str]:
        """The methods the route at this path answers, as Allow would list them."""
        for route in self.routes:
            if isinstance(route, Route) and route.matches(scope)[0] != Match.NONE and route.methods:
                return set(route.methods)
        return set()

    def _decorating(self, send: Send, origin: str) -> Send:
        allow_origin = self.policy.allow_origin(origin)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.add_vary_header(VARY)
                if allow_origin is not None:
                    headers["Access-Control-Allow-Origin"] = allow_origin
                    headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
            await send(message)

        return send_with_cors


def _refused(reason: str) -> Response:
    """A refused preflight: the reason for a person reading it with curl, no CORS header for the browser."""
    response = ApiError(403, "cors_refused", f"CORS preflight refused: {reason}").response()
    response.headers["Vary"] = PREFLIGHT_VARY
    return response


def _header_names(value: str) -> set[str]:
    return {name.strip().lower() for name in value.split(",") if name.strip()}
