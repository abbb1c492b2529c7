"""Loading the key that verifies tokens, with the checks that rule out algorithm confusion.

The classic JWT key-confusion attack signs a token with HS256 using the server's RSA *public* key
as the HMAC secret; a verifier that lets the token's header pick the algorithm then accepts it.
Three walls stop it here: an allow-list never mixes HMAC with public-key algorithms, an HMAC
secret that looks like a public key or certificate is refused at start-up, and a public key is
loaded as a key object whose type must match every allowed algorithm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from cryptography.x509 import load_pem_x509_certificate

Family = Literal["hmac", "rsa", "ec"]

#: Smallest HMAC secret per algorithm: the digest size (RFC 7518 section 3.2).
HMAC_MIN_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
#: Curve each ECDSA algorithm is defined on (RFC 7518 section 3.4).
EC_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
#: RSA keys shorter than this are refused (NIST SP 800-131A).
RSA_MIN_BITS = 2048
_ASYMMETRIC_MARKERS = (b"-----BEGIN", b"ssh-rsa", b"ssh-ed25519", b"ecdsa-sha2-", b"ssh-dss")

VerifyingKey = bytes | rsa.RSAPublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class VerificationKey:
    """A key and the algorithms it may verify; all of one family, matching the key's type."""

    family: Family
    algorithms: tuple[str, ...]
    key: VerifyingKey


def algorithm_family(algorithm: str) -> Family:
    """The key family of a JWS algorithm; ValueError for `none` and anything unknown."""
    if algorithm in HMAC_MIN_KEY_BYTES:
        return "hmac"
    if algorithm in RSA_ALGORITHMS:
        return "rsa"
    if algorithm in EC_CURVES:
        return "ec"
    raise ValueError(f"JWT algorithm {algorithm!r} is not supported (never 'none')")


def load_verification_key(*, algorithms: Sequence[str], key: str | bytes | None) -> VerificationKey:
    """Check the allow-list against the key and return what the verifier needs.

    Raises ValueError with a message fit for a start-up failure; the key itself never appears in it.
    """
    allowed = tuple(dict.fromkeys(algorithms))
    if not allowed:
        raise ValueError("spec.security.auth.algorithms must list at least one algorithm")
    families = {algorithm_family(alg) for alg in allowed}
    if len(families) > 1:
        raise ValueError(
            "spec.security.auth.algorithms must not mix HMAC (HS*), RSA and ECDSA algorithms: "
            "one key would then be read in two ways (key confusion)"
        )
    raw = key.encode() if isinstance(key, str) else key
    if not raw:
        raise ValueError("spec.security.auth: JWT mode needs a key (secretRef for HS*, publicKeySecretRef otherwise)")
    family = families.pop()
    if family == "hmac":
        return VerificationKey(family="hmac", algorithms=allowed, key=_hmac_secret(raw, allowed))
    public_key = _public_key(raw)
    if family == "rsa":
        return VerificationKey(family="rsa", algorithms=allowed, key=_rsa_key(public_key))
    ec_key, ec_algorithms = _ec_key(public_key, allowed)
    return VerificationKey(family="ec", algorithms=ec_algorithms, key=ec_key)


def looks_asymmetric(raw: bytes) -> bool:
    """True when bytes look like a PEM/SSH public key or certificate rather than a shared secret."""
    head = raw.lstrip()
    return any(head.startswith(marker) for marker in _ASYMMETRIC_MARKERS) or b"-----BEGIN" in raw


def _hmac_secret(raw: bytes, algorithms: tuple[str, ...]) -> bytes:
    if looks_asymmetric(raw):
        raise ValueError(
            "spec.security.auth.secretRef holds a public key or certificate, not an HMAC secret: refused, "
            "because anyone who has the public key could forge tokens (key confusion)"
        )
    needed = max(HMAC_MIN_KEY_BYTES[alg] for alg in algorithms)
    if len(raw) < needed:
        raise ValueError(
            f"spec.security.auth.secretRef: the HMAC secret has {len(raw)} bytes, {', '.join(algorithms)} "
            f"needs at least {needed} (RFC 7518 section 3.2)"
        )
    try:  # PyJWT's own screen also catches DER keys and JWK documents.
        jwt.algorithms.HMACAlgorithm(jwt.algorithms.HMACAlgorithm.SHA256).prepare_key(raw)
    except jwt.InvalidKeyError:
        raise ValueError("spec.security.auth.secretRef does not hold a usable HMAC secret (key confusion)") from None
    return raw


def _public_key(raw: bytes) -> object:
    try:
        if b"-----BEGIN CERTIFICATE-----" in raw:
            return load_pem_x509_certificate(raw).public_key()
        return load_pem_public_key(raw)
    except ValueError:
        raise ValueError(
            "spec.security.auth.publicKeySecretRef must hold a PEM public key or certificate "
            "(a private key or anything else is refused)"
        ) from None


def _rsa_key(public_key: object) -> rsa.RSAPublicKey:
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise ValueError("spec.security.auth.publicKeySecretRef: RS*/PS* algorithms need an RSA public key")
    if public_key.key_size < RSA_MIN_BITS:
        raise ValueError(
            f"spec.security.auth.publicKeySecretRef: the RSA key has {public_key.key_size} bits, "
            f"at least {RSA_MIN_BITS} are needed"
        )
    return public_key


def _ec_key(public_key: object, algorithms: tuple[str, ...]) -> tuple[ec.EllipticCurvePublicKey, tuple[str, ...]]:
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise ValueError("spec.security.auth.publicKeySecretRef: ES* algorithms need an EC public key")
    matching = tuple(alg for alg in algorithms if EC_CURVES[alg] == public_key.curve.name)
    if not matching:
        raise ValueError(
            f"spec.security.auth.publicKeySecretRef: the key's curve {public_key.curve.name} fits none of "
            f"{', '.join(algorithms)}"
        )
    return public_key, matching
