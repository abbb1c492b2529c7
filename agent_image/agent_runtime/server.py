"""Serving the app with uvicorn, with SIGTERM turned into a drain before uvicorn's graceful shutdown."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import FrameType

import uvicorn

from agentry_api import wiring

from .app import build_app
from .config import RuntimeConfig
from .runtime import Runtime
from .services.build import build_services
from .settings import RuntimeSettings
from .termination import StartupError


class DrainingServer(uvicorn.Server):
    """A uvicorn server that marks the runtime draining the moment a shutdown signal arrives.

    uvicorn then closes the listener, lets in-flight requests finish (up to the graceful timeout)
    and runs the lifespan shutdown, which flushes the audit trail and closes the services. Requests
    still arriving on open keep-alive connections meanwhile get 503 with Retry-After, and /readyz
    says not ready, so the endpoints controller stops routing here.
    """

    def __init__(self, config: uvicorn.Config, *, runtime: Runtime) -> None:
        super().__init__(config)
        self.runtime = runtime

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Drain first (only a flag: safe inside a signal handler), then let uvicorn shut down."""
        self.runtime.drain()
        super().handle_exit(sig, frame)


def build_server(
    *, config: RuntimeConfig, host: str, port: int, settings: RuntimeSettings | None = None
) -> DrainingServer:
    """The server for a loaded configuration, with services chosen from the spec."""
    settings = settings or RuntimeSettings()
    data_dir = Path(os.environ.get(wiring.DATA_DIR_ENV, wiring.DATA_DIR))
    runtime = Runtime(config=config, services=build_services(config=config, data_dir=data_dir), settings=settings)
    grace = settings.shutdown_grace_seconds
    if grace is None:
        grace = config.spec.concurrency.request_timeout_seconds + 5
    uv_config = uvicorn.Config(
        build_app(runtime),
        host=host,
        port=port,
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=int(grace),
        server_header=False,
    )
    return DrainingServer(uv_config, runtime=runtime)


def bind_socket(*, host: str, port: int) -> socket.socket:
    """The server's address, bound before anything starts, so a taken port fails first and with one line.

    Bound but not listening: until uvicorn serves on it, a probe is refused rather than left in a backlog.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"--port {port}: cannot bind {host}:{port}: {exc.strerror or exc}") from None
    return sock
