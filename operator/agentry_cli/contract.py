"""`agentry crd` and `agentry validate`: the contract's generator and offline checks, as commands."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import TypeAlias

import yaml

from agentry_api.crdgen import CRD_FILENAME, render_crd
from agentry_api.validate import check_manifest

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def register(subparsers: Subparsers) -> None:
    """Add `agentry crd` and `agentry validate`."""
    _register_crd(subparsers)
    _register_validate(subparsers)


def _crd(args: argparse.Namespace) -> int:
    text = render_crd()
    if args.check:
        committed = Path(args.check).read_text(encoding="utf-8")
        if committed == text:
            return 0
        diff = difflib.unified_diff(
            committed.splitlines(keepends=True), text.splitlines(keepends=True), args.check, "generated"
        )
        sys.stderr.writelines(diff)
        print(f"{args.check} is out of date: run `agentry crd -o {args.check}`", file=sys.stderr)
        return 1
    for output in args.output or ["-"]:
        if output == "-":
            sys.stdout.write(text)
        else:
            Path(output).write_text(text, encoding="utf-8")
    return 0


def _register_crd(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("crd", help="print or write the AgentDeployment CRD generated from the models")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-o", "--output", action="append", help=f"file to write, repeatable (e.g. crds/{CRD_FILENAME}); default stdout"
    )
    group.add_argument("--check", metavar="FILE", help="exit 1 with a diff when FILE differs from the generated CRD")
    parser.set_defaults(func=_crd)


def _validate(args: argparse.Namespace) -> int:
    failed = False
    for name in args.files:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        for index, doc in enumerate(yaml.safe_load_all(text)):
            if not isinstance(doc, dict) or doc.get("kind") != "AgentDeployment":
                continue
            label = f"{name}#{index} ({doc.get('metadata', {}).get('name', '?')})"
            errors = check_manifest(doc)
            failed = failed or bool(errors)
            print(f"{label}: {'ok' if not errors else 'invalid'}")
            for line in errors:
                print(f"  {line}")
    return 1 if failed else 0


def _register_validate(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "validate", help="check AgentDeployment manifests offline against the CRD schema and CEL rules"
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="YAML files (- for stdin)")
    parser.set_defaults(func=_validate)
