"""The operator's listening ports, claimed before kopf starts: a taken port is one clear line and an exit.

Left to kopf and aiohttp, a taken liveness port ends in a traceback from a background task and a taken metrics
port in a startup handler kopf retries forever; either way the process lingers without serving. The metrics
socket is bound here and handed to the metrics server; the liveness port (which kopf binds itself) is probed
the way aiohttp binds it, a moment before kopf does.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from .config import ENV_PREFIX, OperatorConfig

#: kopf's port when the liveness URL names none (plain http).
KOPF_DEFAULT_PORT = 80
#: The metrics server's port when the metrics URL names none.
METRICS_DEFAULT_PORT = 9090


class PortInUse(Exception):
    """A listening port cannot be bound; the message names the setting and the port."""


@dataclass(frozen=True)
class Ports:
    """What `claim` holds: the bound metrics socket (None when metrics are off)."""

    metrics: socket.socket | None


def claim(config: OperatorConfig) -> Ports:
    """Probe the liveness port and bind the metrics port; raise PortInUse for the first that is taken."""
    if config.liveness_endpoint:
        bind(config.liveness_endpoint, setting="liveness_endpoint", default_port=KOPF_DEFAULT_PORT).close()
    if not config.metrics_endpoint:
        return Ports(metrics=None)
    return Ports(metrics=bind(config.metrics_endpoint, setting="metrics_endpoint", default_port=METRICS_DEFAULT_PORT))


def bind(endpoint: str, *, setting: str, default_port: int) -> socket.socket:
    """A listening TCP socket on the endpoint's host and port, with the options aiohttp itself sets."""
    url = urlsplit(endpoint)
    host, port = url.hostname or "0.0.0.0", url.port or default_port
    variable = ENV_PREFIX + setting.upper()
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise PortInUse(f"{variable}={endpoint}: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        reason = "port already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise PortInUse(f"{variable}={endpoint}: cannot listen on {host}:{port}: {reason}") from None
    sock.setblocking(False)
    return sock
