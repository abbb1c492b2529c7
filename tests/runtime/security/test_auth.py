from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from agent_runtime.security.auth import ANONYMOUS, AuthError, Principal, bearer_token, build_authenticator
from agent_runtime.security.permissions import Permission, authorize
from agent_runtime.security.tokens import mint_token
from agentry_api.v1alpha1 import AuthSpec

from .keys import HMAC_SECRET, OTHER_SECRET, ec_pair, forge, rsa_pair

NOW = 1_800_000_000.0


def clock() -> float:
    return NOW


def hs_spec(**overrides: Any) -> AuthSpec:
    return AuthSpec.model_validate({"secretRef": {"name": "jwt", "key": "key"}, **overrides})


def rs_spec(algorithms: list[str] | None = None) -> AuthSpec:
    return AuthSpec.model_validate(
        {"publicKeySecretRef": {"name": "jwt", "key": "pub"}, "algorithms": algorithms or ["RS256"]}
    )


def hs_token(**claims: Any) -> str:
    return mint_token(
        key=HMAC_SECRET, subject="alice", roles=["agent_operator"], clock=clock, extra_claims=claims or None
    )


def bearer(token: str) -> str:
    return f"Bearer {token}"


def authenticate_hs(header: str | None) -> Principal:
    return build_authenticator(hs_spec(), HMAC_SECRET, clock=clock).authenticate(header)


def test_valid_hs256_token_gives_subject_and_roles() -> None:
    principal = authenticate_hs(bearer(hs_token()))
    assert principal == Principal(subject="alice", roles=frozenset({"agent_operator"}))


@pytest.mark.parametrize(
    ("algorithm", "pair"),
    [("RS256", lambda: rsa_pair()), ("PS256", lambda: rsa_pair()), ("ES256", lambda: ec_pair())],
)
def test_public_key_algorithms_verify(algorithm: str, pair: Callable[[], Any]) -> None:
    keys = pair()
    authenticator = build_authenticator(rs_spec([algorithm]), keys.public_pem, clock=clock)
    token = mint_token(key=keys.private_pem, subject="bob", roles=["admin"], algorithm=algorithm, clock=clock)
    assert authenticator.authenticate(bearer(token)).roles == {"admin"}


def test_roles_claim_may_be_nested_or_space_separated() -> None:
    spec = hs_spec(rolesClaim="realm_access.roles")
    authenticator = build_authenticator(spec, HMAC_SECRET, clock=clock)
    token = hs_token(realm_access={"roles": "admin read_only"})
    assert authenticator.authenticate(bearer(token)).roles == {"admin", "read_only"}


def test_leeway_tolerates_small_clock_skew() -> None:
    token = hs_token(exp=int(NOW) - 10)
    assert authenticate_hs(bearer(token)).subject == "alice"


@pytest.mark.parametrize(
    ("maximum", "lifetime", "accepted"),
    [(86_400, 86_400, True), (86_400, 86_401, False), (3600, 3600, True), (3600, 3601, False)],
    ids=["default-exactly", "default-one-over", "shortest-exactly", "shortest-one-over"],
)
def test_token_lifetime_is_bounded_by_the_spec(maximum: int, lifetime: int, accepted: bool) -> None:
    """The boundary is exp - iat as signed, whatever the clock says now (here mid-lifetime)."""
    spec = hs_spec(maxTokenLifetimeSeconds=maximum)
    authenticator = build_authenticator(spec, HMAC_SECRET, clock=lambda: NOW + lifetime // 2)
    header = bearer(mint_token(key=HMAC_SECRET, subject="alice", roles=[], ttl_seconds=lifetime, clock=clock))
    if accepted:
        assert authenticator.authenticate(header).subject == "alice"
    else:
        with pytest.raises(AuthError, match=f"longer than the {maximum}s this agent accepts") as caught:
            authenticator.authenticate(header)
        assert caught.value.status_code == 401


@pytest.mark.parametrize("seconds", [3599, 604_801, 0, -1])
def test_max_token_lifetime_outside_an_hour_to_a_week_is_refused(seconds: int) -> None:
    with pytest.raises(ValueError, match="maxTokenLifetimeSeconds"):
        hs_spec(maxTokenLifetimeSeconds=seconds)


def test_mode_none_gives_anonymous_with_allowed_roles() -> None:
    spec = AuthSpec.model_validate({"mode": "none"})
    authenticator = build_authenticator(spec, None, allowed_roles=["read_only"])
    assert authenticator.authenticate(None) == Principal(subject=ANONYMOUS, roles=frozenset({"read_only"}))


def _forged_none() -> str:
    return forge({"alg": "none", "typ": "JWT"}, {"sub": "eve", "roles": ["admin"], "exp": NOW + 60})


def _hs_rs_confusion() -> str:
    claims = {"sub": "eve", "roles": ["admin"], "iss": "agentry", "aud": "agentry", "exp": NOW + 60}
    return forge({"alg": "HS256", "typ": "JWT"}, claims, hmac_key=rsa_pair().public_pem)


def _tampered_payload() -> str:
    header, _, signature = hs_token().split(".")
    claims = {"sub": "alice", "roles": ["admin"], "iss": "agentry", "aud": "agentry", "exp": NOW + 60}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{payload}.{signature}"


def _without(claim: str) -> str:
    claims = {
        "sub": "alice",
        "roles": ["admin"],
        "iss": "agentry",
        "aud": "agentry",
        "iat": int(NOW),
        "exp": int(NOW) + 60,
    }
    del claims[claim]
    return jwt.encode(claims, HMAC_SECRET, algorithm="HS256")


def _with_raw_exp(literal: str) -> str:
    """A signed token whose `exp` is written as `literal`, which json.dumps would never produce."""
    claims = json.dumps({"sub": "alice", "roles": ["admin"], "iss": "agentry", "aud": "agentry", "iat": int(NOW)})
    payload = claims[:-1] + f', "exp": {literal}}}'
    return jwt.api_jws.encode(payload.encode(), HMAC_SECRET, algorithm="HS256")


ATTACKS: list[tuple[str, Callable[[], str | None], str]] = [
    ("alg none", lambda: bearer(_forged_none()), "algorithm is not accepted"),
    ("wrong key", lambda: bearer(mint_token(key=OTHER_SECRET, subject="eve", roles=["admin"])), "signature"),
    ("HS/RS confusion", lambda: bearer(_hs_rs_confusion()), "signature does not verify"),
    ("expired", lambda: bearer(hs_token(exp=int(NOW) - 31)), "expired"),
    ("not yet valid", lambda: bearer(hs_token(nbf=int(NOW) + 31)), "not valid yet"),
    ("issued in the future", lambda: bearer(hs_token(iat=int(NOW) + 3600)), "issued in the future"),
    ("wrong issuer", lambda: bearer(hs_token(iss="someone-else")), "issuer is not accepted"),
    ("wrong audience", lambda: bearer(hs_token(aud="another-agent")), "audience is not accepted"),
    ("missing exp", lambda: bearer(_without("exp")), "missing the 'exp' claim"),
    ("missing aud", lambda: bearer(_without("aud")), "missing the 'aud' claim"),
    ("missing sub", lambda: bearer(_without("sub")), "missing the 'sub' claim"),
    ("exp not a number", lambda: bearer(hs_token(exp="tomorrow")), "must be a number"),
    ("missing iat", lambda: bearer(_without("iat")), "missing the 'iat' claim"),
    ("exp in 10^30 seconds", lambda: bearer(hs_token(exp=10**30)), "lifetime (exp - iat) is longer than the 86400s"),
    ("exp NaN", lambda: bearer(_with_raw_exp("NaN")), "not a finite number"),
    ("exp Infinity", lambda: bearer(_with_raw_exp("Infinity")), "not a finite number"),
    ("exp beyond a float", lambda: bearer(_with_raw_exp("1" + "0" * 400)), "not a finite number"),
    ("roles not a list", lambda: bearer(hs_token(roles={"admin": True})), "list of role names"),
    ("tampered payload", lambda: bearer(_tampered_payload()), "signature does not verify"),
    ("no header", lambda: None, "missing Authorization header"),
    ("Bearer without token", lambda: "Bearer", "Bearer token is missing"),
    ("Bearer with blanks", lambda: "Bearer    ", "Bearer token is missing"),
    ("Basic scheme", lambda: "Basic YWxpY2U6c2VjcmV0", "scheme must be Bearer"),
    ("not a JWT", lambda: "Bearer not-a-token", "malformed"),
    ("JWE-shaped", lambda: "Bearer a.b.c.d.e", "malformed"),
    ("garbage header", lambda: "Bearer e30x.e30.", "malformed"),
    ("oversized", lambda: bearer("a" * 9000 + ".b.c"), "longer than"),
]


@pytest.mark.parametrize(("header", "expected"), [(make, msg) for _, make, msg in ATTACKS], ids=[a[0] for a in ATTACKS])
def test_attacks_are_refused_with_401(header: Callable[[], str | None], expected: str) -> None:
    value = header()
    with pytest.raises(AuthError) as caught:
        authenticate_hs(value)
    assert caught.value.status_code == 401
    assert expected in caught.value.message
    assert HMAC_SECRET.decode() not in caught.value.message
    if value and len(value) > 20:
        assert value.removeprefix("Bearer ") not in caught.value.message


def test_hs_rs_confusion_refused_by_an_rs256_verifier() -> None:
    authenticator = build_authenticator(rs_spec(), rsa_pair().public_pem, clock=clock)
    with pytest.raises(AuthError, match="algorithm is not accepted"):
        authenticator.authenticate(bearer(_hs_rs_confusion()))


def test_mixed_algorithm_families_refused_even_when_the_spec_rule_is_bypassed() -> None:
    spec = rs_spec().model_copy(update={"algorithms": ["RS256", "HS256"]})
    with pytest.raises(ValueError, match="must not mix"):
        build_authenticator(spec, rsa_pair().public_pem)


@pytest.mark.parametrize(
    ("spec", "key", "expected"),
    [
        (hs_spec(), lambda: rsa_pair().public_pem, "public key or certificate"),
        (hs_spec(), lambda: b"ssh-rsa AAAAB3NzaC1yc2E" + b"A" * 40, "public key or certificate"),
        (hs_spec(), lambda: b"short", "needs at least 32"),
        (hs_spec(algorithms=["HS512"]), lambda: HMAC_SECRET, "needs at least 64"),
        (hs_spec(), lambda: None, "needs a key"),
        (rs_spec(), lambda: HMAC_SECRET, "PEM public key"),
        (rs_spec(), lambda: rsa_pair().private_pem, "PEM public key"),
        (rs_spec(), lambda: ec_pair().public_pem, "need an RSA public key"),
        (rs_spec(["ES256"]), lambda: rsa_pair().public_pem, "need an EC public key"),
        (rs_spec(["ES384"]), lambda: ec_pair().public_pem, "fits none of"),
        (rs_spec(), lambda: rsa_pair(1024).public_pem, "at least 2048"),
    ],
    ids=[
        "hmac-with-pem",
        "hmac-with-ssh-key",
        "hmac-too-short",
        "hs512-too-short",
        "no-key",
        "rsa-with-secret",
        "rsa-with-private-key",
        "rsa-with-ec-key",
        "ec-with-rsa-key",
        "ec-curve-mismatch",
        "rsa-too-small",
    ],
)
def test_bad_keys_fail_at_build_time(spec: AuthSpec, key: Callable[[], bytes | None], expected: str) -> None:
    material = key()
    with pytest.raises(ValueError, match=expected) as caught:
        build_authenticator(spec, material)
    if material:
        assert material.decode(errors="replace") not in str(caught.value)


def test_token_signed_by_another_rsa_key_is_refused() -> None:
    authenticator = build_authenticator(rs_spec(), rsa_pair().public_pem, clock=clock)
    token = mint_token(key=rsa_pair(index=1).private_pem, subject="eve", roles=["admin"], algorithm="RS256")
    with pytest.raises(AuthError, match="signature does not verify"):
        authenticator.authenticate(bearer(token))


def test_rs256_token_refused_by_an_es256_verifier() -> None:
    authenticator = build_authenticator(rs_spec(["ES256"]), ec_pair().public_pem, clock=clock)
    token = mint_token(key=rsa_pair().private_pem, subject="eve", roles=["admin"], algorithm="RS256", clock=clock)
    with pytest.raises(AuthError, match=r"not accepted \(allowed: ES256\)"):
        authenticator.authenticate(bearer(token))


@pytest.mark.parametrize("header", ["bearer abc.def.ghi", "Bearer   abc.def.ghi  ", "BEARER abc.def.ghi"])
def test_bearer_scheme_is_case_insensitive(header: str) -> None:
    assert bearer_token(header) == "abc.def.ghi"


def test_www_authenticate_names_the_error() -> None:
    expired = AuthError(401, "token has expired").www_authenticate(token_sent=True)
    assert expired == 'Bearer realm="agentry", error="invalid_token", error_description="token has expired"'
    assert 'error="insufficient_scope"' in AuthError(403, 'needs "run"').www_authenticate(token_sent=True)


def test_www_authenticate_without_a_token_has_no_error_code() -> None:
    """RFC 6750 3.1: a request that sent no credentials gets the bare challenge."""
    assert AuthError(401, "missing Authorization header").www_authenticate(token_sent=False) == 'Bearer realm="agentry"'


def test_www_authenticate_description_stays_a_valid_quoted_string() -> None:
    challenge = AuthError(401, 'bad "quote" \\ and \u00e9\n').www_authenticate(token_sent=True)
    assert challenge.endswith('error_description="bad quote  and "')


def test_auth_error_refuses_other_statuses() -> None:
    with pytest.raises(ValueError, match="401 or 403"):
        AuthError(500, "boom")


@pytest.mark.parametrize(
    ("roles", "allowed", "message"),
    [
        (None, ["admin", "agent_operator"], "none of the roles this agent admits"),
        ([], ["admin", "agent_operator"], "none of the roles this agent admits"),
        (["data_analyst"], ["admin", "agent_operator"], "none of the roles this agent admits"),
        (["read_only"], ["read_only"], "permission 'run' is required"),
    ],
    ids=["missing-roles", "empty-roles", "role-not-allowed", "role-lacks-permission"],
)
def test_valid_token_without_a_usable_role_gets_403(roles: list[str] | None, allowed: list[str], message: str) -> None:
    if roles is None:
        token = _without("roles")
    else:
        token = mint_token(key=HMAC_SECRET, subject="carol", roles=roles, clock=clock)
    principal = authenticate_hs(bearer(token))
    with pytest.raises(AuthError, match=message) as caught:
        authorize(principal, Permission.RUN, allowed_roles=allowed)
    assert caught.value.status_code == 403
