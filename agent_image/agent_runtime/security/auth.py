"""Authentication of requests: a bearer JWT checked against the agent's AuthSpec.

Every failure is an AuthError(401) whose message says what is wrong (expired, wrong audience, ...)
without repeating the token or revealing anything about the key.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol, get_args

import jwt

from agentry_api.v1alpha1 import AuthMode, AuthSpec, Role

from .claims import check_lifetime, roles_of, subject_of
from .jwtkeys import VerificationKey, load_verification_key
from .principal import AuthError, Principal

__all__ = [
    "ALL_ROLES",
    "ANONYMOUS",
    "AnonymousAuthenticator",
    "AuthError",
    "Authenticator",
    "JwtAuthenticator",
    "Principal",
    "bearer_token",
    "build_authenticator",
]

#: Every role the runtime knows, in the order of the API.
ALL_ROLES: frozenset[str] = frozenset(get_args(Role))
#: Subject of the principal that mode none hands out.
ANONYMOUS = "anonymous"
#: Longest token accepted; real tokens are far smaller, so this only bounds the work of a bad one.
MAX_TOKEN_CHARS = 8192
#: Claims a token must carry: `exp` so it cannot live forever, `iss`/`aud` so a token minted for
#: another service is refused, `sub` so limits and the audit trail know who called. `iat` is required
#: too, by check_lifetime, whose message says why (maxTokenLifetimeSeconds).
REQUIRED_CLAIMS = ("exp", "iss", "aud", "sub")
_COMPACT_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
# PyJWT errors, most specific first, and what the caller is told.
_MESSAGES: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.InvalidSignatureError, "token signature does not verify"),
    (jwt.InvalidAlgorithmError, "token algorithm is not accepted"),
    (jwt.InvalidIssuerError, "token issuer is not accepted"),
    (jwt.InvalidAudienceError, "token audience is not accepted"),
    (jwt.InvalidKeyError, "token cannot be verified with the configured key"),
    (jwt.DecodeError, "token is malformed"),
)


class Authenticator(Protocol):
    """Turns the Authorization header of a request into a Principal, or raises AuthError."""

    def authenticate(self, authorization_header: str | None) -> Principal:
        """The caller, or AuthError(401) when the header does not prove who it is."""
        ...


class AnonymousAuthenticator:
    """Mode none: everyone is `anonymous` (development only; the CRD defaults to jwt)."""

    def __init__(self, *, roles: Iterable[str]) -> None:
        self._principal = Principal(subject=ANONYMOUS, roles=frozenset(roles))

    def authenticate(self, authorization_header: str | None) -> Principal:
        """The anonymous principal, whatever the header says."""
        return self._principal


class JwtAuthenticator:
    """Mode jwt: a bearer token signed with the configured key, for this issuer and audience."""

    def __init__(self, *, spec: AuthSpec, key: VerificationKey, clock: Callable[[], float] = time.time) -> None:
        self._spec = spec
        self._key = key
        self._clock = clock

    def authenticate(self, authorization_header: str | None) -> Principal:
        """Verify the token and map its claims; AuthError(401) on any defect."""
        claims = self._verified_claims(bearer_token(authorization_header))
        check_lifetime(
            claims,
            now=self._clock(),
            leeway=self._spec.leeway_seconds,
            max_lifetime=self._spec.max_token_lifetime_seconds,
        )
        return Principal(subject=subject_of(claims), roles=roles_of(claims, claim=self._spec.roles_claim))

    def _verified_claims(self, token: str) -> dict[str, Any]:
        self._check_header_algorithm(token)
        try:
            return jwt.decode(
                token,
                key=self._key.key,
                algorithms=list(self._key.algorithms),
                audience=self._spec.audience,
                issuer=self._spec.issuer,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    # Lifetime is checked by check_lifetime against the injected clock.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(401, f"token is missing the '{exc.claim}' claim") from None
        except jwt.PyJWTError as exc:
            raise AuthError(401, _describe(exc)) from None

    def _check_header_algorithm(self, token: str) -> None:
        """Refuse early, naming the allowed list, when the header asks for another algorithm.

        The token's own `alg` is never echoed: it is attacker-controlled text.
        """
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError:
            raise AuthError(401, "token is malformed") from None
        if algorithm not in self._key.algorithms:
            allowed = ", ".join(self._key.algorithms)
            raise AuthError(401, f"token algorithm is not accepted (allowed: {allowed})")


def build_authenticator(
    spec: AuthSpec,
    key: str | bytes | None,
    *,
    allowed_roles: Iterable[str] = ALL_ROLES,
    clock: Callable[[], float] = time.time,
) -> Authenticator:
    """The authenticator for an agent's AuthSpec; ValueError (naming the field) on a bad key.

    In mode none the anonymous principal holds `allowed_roles` (by default every role, which
    `authorize` then narrows to the agent's allowedRoles anyway), and `key` is ignored.
    """
    if spec.mode == AuthMode.NONE:
        return AnonymousAuthenticator(roles=allowed_roles)
    verification_key = load_verification_key(algorithms=spec.algorithms, key=key)
    return JwtAuthenticator(spec=spec, key=verification_key, clock=clock)


def bearer_token(authorization_header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or AuthError(401) saying what is wrong."""
    if authorization_header is None or not authorization_header.strip():
        raise AuthError(401, "missing Authorization header (expected: Bearer <token>)")
    scheme, _, token = authorization_header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise AuthError(401, "Authorization scheme must be Bearer")
    token = token.strip()
    if not token:
        raise AuthError(401, "Bearer token is missing")
    if len(token) > MAX_TOKEN_CHARS:
        raise AuthError(401, f"token is longer than {MAX_TOKEN_CHARS} characters")
    if not _COMPACT_JWS.match(token):
        raise AuthError(401, "token is malformed (expected a signed JWT: header.payload.signature)")
    return token


def _describe(error: jwt.PyJWTError) -> str:
    for kind, message in _MESSAGES:
        if isinstance(error, kind):
            return message
    return "token is invalid"
