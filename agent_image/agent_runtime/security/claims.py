"""Pure checks of a verified token's claims: lifetime against an injected clock, subject, roles."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from .principal import AuthError

#: Longest subject accepted; longer ones are a sign of a broken or hostile issuer.
MAX_SUBJECT_CHARS = 256
_ROLE_SEPARATORS = re.compile(r"[\s,]+")


def check_lifetime(claims: Mapping[str, Any], *, now: float, leeway: float, max_lifetime: float) -> None:
    """Refuse a token outside [nbf, exp), allowing `leeway` seconds of clock skew either way.

    `exp` is required (a token without it would be valid forever), and so is `iat`: without it the
    lifetime the issuer granted (`exp - iat`) cannot be checked against `max_lifetime`, and a leaked
    token signed to expire in a thousand years would be as good as one that expires tonight. The
    maximum gets no leeway: it bounds what the issuer signed, not the clocks. `nbf` is checked when
    present, and `iat` may not lie in the future.
    """
    expires = _numeric(claims, "exp")
    if expires is None:
        raise AuthError(401, "token is missing the 'exp' claim")
    issued = _numeric(claims, "iat")
    if issued is None:
        raise AuthError(401, "token is missing the 'iat' claim (needed to check its lifetime)")
    if expires - issued > max_lifetime:
        raise AuthError(401, f"token lifetime (exp - iat) is longer than the {max_lifetime:.0f}s this agent accepts")
    if now >= expires + leeway:
        raise AuthError(401, "token has expired")
    not_before = _numeric(claims, "nbf")
    if not_before is not None and now + leeway < not_before:
        raise AuthError(401, "token is not valid yet (nbf)")
    if now + leeway < issued:
        raise AuthError(401, "token was issued in the future (iat)")


def subject_of(claims: Mapping[str, Any]) -> str:
    """The `sub` claim; required, because rate limits and the audit trail are kept per subject."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip():
        raise AuthError(401, "token is missing the 'sub' claim")
    if len(subject) > MAX_SUBJECT_CHARS:
        raise AuthError(401, f"token 'sub' claim is longer than {MAX_SUBJECT_CHARS} characters")
    return subject


def roles_of(claims: Mapping[str, Any], *, claim: str) -> frozenset[str]:
    """Role names from `claim`: a list of strings, or one string separated by spaces or commas.

    A missing claim gives no roles (authorisation then answers 403, which names the problem).
    `claim` is looked up as given first, then as a dotted path (`realm_access.roles`), so both
    namespaced claims that contain dots and nested claims of common identity providers work.
    """
    value = _lookup(claims, claim)
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(part for part in _ROLE_SEPARATORS.split(value) if part)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return frozenset(value)
    raise AuthError(401, f"token claim '{claim}' must be a list of role names")


def _lookup(claims: Mapping[str, Any], claim: str) -> Any:
    if claim in claims:
        return claims[claim]
    value: Any = claims
    for part in claim.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _numeric(claims: Mapping[str, Any], name: str) -> float | None:
    """A time claim as seconds; NaN, infinities and integers beyond a float are refused, not compared.

    JSON parsers accept `NaN`, which compares false with everything: unchecked, `exp: NaN` would
    never expire and pass every bound.
    """
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthError(401, f"token '{name}' claim must be a number (seconds since the epoch)")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds):
        raise AuthError(401, f"token '{name}' claim is not a finite number of seconds")
    return seconds
