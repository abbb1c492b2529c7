"""The `agentry` command: one entry point whose subcommands live next to what they drive."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Protocol, cast

# Each module here exposes `register(subparsers)`; it adds its subcommands and sets `func` on them.
# Modules are imported lazily by name so that `agentry crd` does not pay for kopf or the runtime.
COMMAND_MODULES: tuple[str, ...] = (
    "agentry_cli.contract",
    "agentry_dev.cluster.commands",
    "agentry_dev.commands",
    "agentry_dev.images.commands",
    "agent_runtime.security.commands",
)


class _Registrar(Protocol):
    def __call__(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


def build_parser() -> argparse.ArgumentParser:
    """Build the parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="agentry", description="Run PydanticAI agents on Kubernetes.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        cast(_Registrar, module.register)(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `agentry` subcommand and return its exit code."""
    args = build_parser().parse_args(argv)
    func = cast(Callable[[argparse.Namespace], int], args.func)
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
