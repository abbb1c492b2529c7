"""`agentry-operator`: read the configuration, set up logging, run kopf with the operator's handlers."""

from __future__ import annotations

import logging
import os
import sys

import kopf

from .config import ConfigError, OperatorConfig
from .ports import PortInUse, Ports, claim


def configure_logging(config: OperatorConfig) -> None:
    """JSON lines by default (one object per line, with the Kubernetes object each line is about)."""
    kopf.configure(
        verbose=config.log_level == "debug",
        quiet=config.log_level in ("warning", "error"),
        log_format=kopf.LogFormat.JSON if config.log_format == "json" else kopf.LogFormat.FULL,
        log_refkey="object",
    )
    if config.log_level != "debug":  # one line per API request drowns the operator's own lines
        logging.getLogger("httpx2").setLevel(logging.WARNING)


def run(config: OperatorConfig, ports: Ports) -> None:
    """Run the operator until SIGTERM or SIGINT (kopf stops gracefully on both); metrics on the claimed socket."""
    from . import handlers  # registers the handlers with kopf's default registry

    settings = kopf.OperatorSettings()
    handlers.configure_settings(settings, config=config)
    kopf.run(
        settings=settings,
        namespaces=list(config.namespaces),
        clusterwide=not config.namespaces,
        liveness_endpoint=config.liveness_endpoint or None,
        standalone=True,  # one replica (see the Helm chart); no peering CRDs needed
        memo=kopf.Memo(config=config, metrics_socket=ports.metrics),
    )


def main() -> int:
    """Entry point; an invalid setting or a taken port exits with status 2 and names the variable."""
    try:
        config = OperatorConfig.from_env(os.environ)
    except ConfigError as exc:
        print(f"agentry-operator: invalid configuration: {exc}", file=sys.stderr)
        return 2
    try:
        ports = claim(config)
    except PortInUse as exc:
        print(f"agentry-operator: {exc}", file=sys.stderr)
        return 2
    configure_logging(config)
    run(config, ports)
    return 0


if __name__ == "__main__":
    sys.exit(main())
