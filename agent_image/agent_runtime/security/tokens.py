"""Minting tokens for local use, tests and the demo; production tokens come from an identity provider."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jwt

from agentry_api.v1alpha1 import MAX_TOKEN_LIFETIME_SECONDS

#: Lifetime of a minted token when none is given: long enough for a session, short enough to expire.
DEFAULT_TTL_SECONDS = 3600


def mint_token(
    *,
    key: str | bytes,
    subject: str,
    roles: Iterable[str],
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    issuer: str = "agentry",
    audience: str = "agentry",
    algorithm: str = "HS256",
    roles_claim: str = "roles",
    extra_claims: Mapping[str, Any] | None = None,
    clock: Callable[[], float] = time.time,
) -> str:
    """A signed JWT with sub, roles, iss, aud, iat, nbf, exp and a unique jti.

    `iat` is always set, since the runtime refuses a token without it; a lifetime beyond the largest
    maxTokenLifetimeSeconds is refused here rather than minted into a token no agent accepts.

    `key` is the HMAC secret for HS* or a PEM private key for RS*/ES*/PS*. `extra_claims` is
    applied last, so tests can override or add any claim (including bad ones).
    """
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    if ttl_seconds > MAX_TOKEN_LIFETIME_SECONDS:
        raise ValueError(
            f"ttl_seconds must be at most {MAX_TOKEN_LIFETIME_SECONDS} (the longest lifetime any agent's "
            "spec.security.auth.maxTokenLifetimeSeconds accepts)"
        )
    now = int(clock())
    claims: dict[str, Any] = {
        "sub": subject,
        roles_claim: sorted(set(roles)),
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    claims.update(extra_claims or {})
    return jwt.encode(claims, key, algorithm=algorithm)
