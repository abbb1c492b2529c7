"""The `agentry token` and `agentry audit verify` subcommands.

Heavy imports (PyJWT, asyncpg) happen inside the handlers, so other `agentry` subcommands start
without them and the operator image, which lacks the runtime extra, can still list every command.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from agentry_api.v1alpha1 import DEFAULT_TOKEN_LIFETIME_SECONDS, JwtAlgorithm, Role

if TYPE_CHECKING:
    from .chain import VerifyReport

ROLE_CHOICES: tuple[str, ...] = get_args(Role)
ALGORITHMS: tuple[str, ...] = get_args(JwtAlgorithm)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `token` and `audit verify`."""
    _register_token(subparsers)
    _register_audit(subparsers)


def _register_token(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "token",
        help="mint a signed JWT for calling an agent locally",
        description="Print a JWT signed with the agent's key (HMAC secret, or PEM private key for RS/ES/PS).",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--secret-file", type=Path, help="file holding the key (one trailing newline is ignored)")
    source.add_argument("--secret-env", metavar="VAR", help="environment variable holding the key")
    parser.add_argument("--subject", default="local-user", help="the `sub` claim (default: local-user)")
    parser.add_argument("--roles", default="agent_operator", help="comma-separated roles (default: agent_operator)")
    parser.add_argument(
        "--ttl",
        type=int,
        default=3600,
        help="lifetime in seconds (default: 3600; agents refuse more than their "
        "spec.security.auth.maxTokenLifetimeSeconds, 86400 unless set, 604800 at most)",
    )
    parser.add_argument("--issuer", default="agentry", help="the `iss` claim (default: agentry)")
    parser.add_argument("--audience", default="agentry", help="the `aud` claim (default: agentry)")
    parser.add_argument("--algorithm", default="HS256", choices=ALGORITHMS, help="signing algorithm (default: HS256)")
    parser.add_argument("--roles-claim", default="roles", help="claim that carries the roles (default: roles)")
    parser.set_defaults(func=run_token)


def _register_audit(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("audit", help="inspect an agent's audit trail")
    actions = parser.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = actions.add_parser(
        "verify",
        help="check the audit hash chain; exit code 1 when it was tampered with",
        description="Read audit_log in seq order and check every link of the hash chain (read-only).",
    )
    source = verify.add_mutually_exclusive_group(required=True)
    source.add_argument("--database-url", metavar="URL", help="postgresql:// URL of the agent's database")
    source.add_argument("--database-url-env", metavar="VAR", help="environment variable holding that URL")
    source.add_argument("--sqlite", metavar="PATH", type=Path, help="SQLite file of the agent (agentry.db)")
    verify.set_defaults(func=run_audit_verify)


def run_token(args: argparse.Namespace) -> int:
    """Print the token; exit 2 with a message on a bad key or argument."""
    from .jwtkeys import HMAC_MIN_KEY_BYTES
    from .tokens import mint_token

    try:
        key = _read_key(args)
        roles = _roles(args.roles)
        minimum = HMAC_MIN_KEY_BYTES.get(args.algorithm)
        if minimum is not None and len(key.encode()) < minimum:
            raise ValueError(f"{args.algorithm} needs a secret of at least {minimum} bytes (the runtime refuses less)")
        token = mint_token(
            key=key,
            subject=args.subject,
            roles=roles,
            ttl_seconds=args.ttl,
            issuer=args.issuer,
            audience=args.audience,
            algorithm=args.algorithm,
            roles_claim=args.roles_claim,
        )
    except (OSError, ValueError, TypeError) as exc:
        print(f"agentry token: {exc}", file=sys.stderr)
        return 2
    if args.ttl > DEFAULT_TOKEN_LIFETIME_SECONDS:
        print(
            f"agentry token: warning: an agent refuses this token unless its spec.security.auth."
            f"maxTokenLifetimeSeconds is at least {args.ttl} (the default is {DEFAULT_TOKEN_LIFETIME_SECONDS})",
            file=sys.stderr,
        )
    print(token)
    return 0


def run_audit_verify(args: argparse.Namespace) -> int:
    """Print the verdict; exit 0 when intact, 1 when tampered with, 2 when the trail cannot be read."""
    from .auditread import iter_sqlite
    from .chain import verify_chain

    try:
        if args.sqlite is not None:
            report = verify_chain(iter_sqlite(args.sqlite))
        else:
            report = asyncio.run(_verify_postgres(_database_url(args)))
    except Exception as exc:  # any driver error: report it, never a traceback
        print(f"agentry audit verify: cannot read the audit trail: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if report.ok:
        print(report.message)
        return 0
    print(f"audit chain BROKEN at seq {report.first_bad_seq} after {report.checked} good records: {report.message}")
    return 1


async def _verify_postgres(url: str) -> VerifyReport:
    from .auditread import iter_postgres
    from .chain import ChainVerifier

    verifier = ChainVerifier()
    async for row in iter_postgres(url):
        if not verifier.feed(row):
            break
    return verifier.report()


def _database_url(args: argparse.Namespace) -> str:
    if args.database_url is not None:
        return str(args.database_url)
    value = os.environ.get(args.database_url_env)
    if not value:
        raise ValueError(f"environment variable {args.database_url_env} is not set")
    return value


def _read_key(args: argparse.Namespace) -> str:
    if args.secret_file is not None:
        text = Path(args.secret_file).read_text(encoding="utf-8")
        return text.removesuffix("\n").removesuffix("\r")  # the runtime reads Secret files the same way
    value = os.environ.get(args.secret_env)
    if not value:
        raise ValueError(f"environment variable {args.secret_env} is not set")
    return value


def _roles(text: str) -> list[str]:
    roles = [role.strip() for role in text.split(",") if role.strip()]
    unknown = sorted(set(roles) - set(ROLE_CHOICES))
    if unknown or not roles:
        raise ValueError(f"--roles must name roles among {', '.join(ROLE_CHOICES)} (got {text!r})")
    return roles
