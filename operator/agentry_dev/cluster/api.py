"""A minimal HTTPS client for the few API calls `up` makes, so starting a cluster needs no kubectl."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Response:
    """Status code and body; a connection failure is status 0 with the error text as body."""

    status: int
    body: str

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True)
class ApiClient:
    """Talks to one API server with the admin client certificate."""

    server: str
    ca: Path
    cert: Path
    key: Path
    timeout: float = 5.0
    """Seconds per request; the local API server answers in milliseconds when it is up at all."""

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(certfile=str(self.cert), keyfile=str(self.key))
        return context

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Response:
        """Send one request; HTTP errors come back as a Response, never as an exception."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.server + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._context()) as answer:
                return Response(answer.status, answer.read().decode(errors="replace"))
        except urllib.error.HTTPError as error:
            try:
                return Response(error.code, error.read().decode(errors="replace"))
            finally:
                error.close()
        except (OSError, urllib.error.URLError) as error:
            return Response(0, str(error))
