"""`agentry-runtime --config FILE [--host H] [--port P]`: serve one agent over HTTP."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from agentry_api import wiring

from .config import ConfigError, load_config
from .logs import configure_logging
from .termination import StartupError, report_failure

if TYPE_CHECKING:
    from .server import DrainingServer

#: Exit code of a configuration the runtime cannot use (argparse uses the same for bad arguments).
EXIT_CONFIG = wiring.EXIT_CONFIG
#: Exit code of a start that failed otherwise: a dependency down, the port taken (uvicorn uses the same).
EXIT_START_FAILED = wiring.EXIT_START_FAILED

log = logging.getLogger("agentry.runtime")


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="agentry-runtime", description="Serve one PydanticAI agent over HTTP.")
    parser.add_argument(
        "--config", default=wiring.CONFIG_PATH, help=f"AgentDeployment or spec (default {wiring.CONFIG_PATH})"
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=wiring.RUNTIME_PORT, help=f"port (default {wiring.RUNTIME_PORT})")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Load and check the configuration, then serve until SIGTERM.

    A start that fails ends with one line naming the problem, on stderr and in the termination message
    (`termination.report_failure`), and exit code 2 for a bad configuration, 3 for any other start failure.
    """
    args = build_parser().parse_args(argv)
    configure_logging(level=args.log_level)
    try:
        server, sock = _prepare(args)
    except ConfigError as error:
        report_failure(f"invalid configuration in {args.config}: " + "; ".join(error.lines))
        return EXIT_CONFIG
    except StartupError as error:
        report_failure(str(error))
        return EXIT_START_FAILED
    return _serve(server, sock, port=args.port)


def _prepare(args: argparse.Namespace) -> tuple[DrainingServer, socket.socket]:
    """The configuration checked, the runtime built and its port bound: everything that needs no service."""
    config = load_config(args.config)
    from .server import bind_socket, build_server

    server = build_server(config=config, host=args.host, port=args.port)
    return server, bind_socket(host=args.host, port=args.port)


def _serve(server: DrainingServer, sock: socket.socket, *, port: int) -> int:
    """Run until shut down; a lifespan start-up that fails (a dependency down) is reported like a bad config."""
    config = server.runtime.config
    log.info("starting", extra={"fields": {"agent": f"{config.namespace}/{config.name}", "port": port}})
    try:
        server.run(sockets=[sock])
    except SystemExit:  # uvicorn exits with 3 when the lifespan start-up failed
        if server.started:
            raise
        report_failure(f"start-up failed: {server.runtime.start_failure or 'see the log'}")
        return EXIT_START_FAILED
    finally:
        sock.close()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
