"""Key material and token forging helpers shared by the security tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

HMAC_SECRET = b"s" * 32 + b"-test-only-hmac-secret"
OTHER_SECRET = b"o" * 32 + b"-another-hmac-secret"


@dataclass(frozen=True)
class KeyPair:
    private_pem: bytes
    public_pem: bytes


def _pem_pair(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> KeyPair:
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyPair(private_pem=private_pem, public_pem=public_pem)


@cache
def rsa_pair(bits: int = 2048, index: int = 0) -> KeyPair:
    """An RSA key pair, generated once per (bits, index) for the whole run."""
    return _pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=bits))


@cache
def ec_pair(curve: str = "secp256r1") -> KeyPair:
    """An EC key pair on `curve`, generated once per run."""
    return _pem_pair(ec.generate_private_key(ec.SECP384R1() if curve == "secp384r1" else ec.SECP256R1()))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], *, hmac_key: bytes | None = None) -> str:
    """A compact JWS built by hand, for tokens PyJWT refuses to make (alg none, HS256 with a PEM)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if hmac_key is None:
        return signing_input + "."
    signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"
