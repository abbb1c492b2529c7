"""`agentry-runtime --config FILE [--host H] [--port P]`: serve one agent over HTTP."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from agentry_api import wiring

from .config import ConfigError, load_config
from .logs import configure_logging

#: Exit code of a configuration the runtime cannot use (argparse uses the same for bad arguments).
EXIT_CONFIG = 2

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
    """Load and check the configuration, then serve until SIGTERM; 2 when the configuration is bad."""
    args = build_parser().parse_args(argv)
    configure_logging(level=args.log_level)
    try:
        config = load_config(args.config)
        from .server import build_server

        server = build_server(config=config, host=args.host, port=args.port)
    except ConfigError as error:
        print(f"agentry-runtime: invalid configuration in {args.config}:", file=sys.stderr)
        for line in error.lines:
            print(f"  {line}", file=sys.stderr)
        return EXIT_CONFIG
    log.info("starting", extra={"fields": {"agent": f"{config.namespace}/{config.name}", "port": args.port}})
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
