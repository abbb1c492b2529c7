"""Certificates and keys of one local cluster: a CA, the API server's serving cert, client certs, the SA key."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)
"""Long enough that a dev cluster never expires under a developer; short enough to look like a real one."""

API_SERVER_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
"""DNS names the API server answers to (in-cluster clients use the `kubernetes.default.svc` names)."""


@dataclass(frozen=True)
class Issued:
    """A PEM certificate and its PEM private key."""

    cert: bytes
    key: bytes


@dataclass(frozen=True)
class Subject:
    """Who a client certificate names: the API server maps CN to the user and O to its groups."""

    common_name: str
    organizations: tuple[str, ...] = ()


CLIENTS: dict[str, Subject] = {
    "admin": Subject("kubernetes-admin", ("system:masters",)),
    "controller-manager": Subject("system:kube-controller-manager"),
    "scheduler": Subject("system:kube-scheduler"),
    "kwok": Subject("system:kwok-controller", ("system:masters",)),
    "front-proxy": Subject("front-proxy-client"),
}
"""Client identities; the bootstrap RBAC roles of kube-controller-manager and kube-scheduler match these CNs, and
`front-proxy` is the API server's own identity towards aggregated API servers (request-header authentication)."""


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256 instead of RSA: a key takes microseconds, so a fresh cluster's PKI costs nothing at `up`.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(subject: Subject) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in subject.organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, subject.common_name))
    return x509.Name(attributes)


def _builder(
    *, subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, now: datetime.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def new_ca(*, common_name: str, now: datetime.datetime) -> Issued:
    """A self-signed CA that signs every other cert of one cluster."""
    key = _new_key()
    name = _name(Subject(common_name))
    cert = (
        _builder(subject=name, issuer=name, public_key=key.public_key(), now=now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue(
    *, ca: Issued, subject: Subject, now: datetime.datetime, dns_names: tuple[str, ...] = (), ips: tuple[str, ...] = ()
) -> Issued:
    """A leaf cert signed by `ca`: a serving cert when it has names or IPs, else a client cert."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    ca_key = serialization.load_pem_private_key(ca.key, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = _new_key()
    serving = bool(dns_names or ips)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if serving else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(subject=_name(subject), issuer=ca_cert.subject, public_key=key.public_key(), now=now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if serving:
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def new_signing_key() -> Issued:
    """The ServiceAccount token key pair; `cert` holds the PEM public key the API server verifies with."""
    key = _new_key()
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return Issued(public, _key_pem(key))


@dataclass(frozen=True)
class PkiPaths:
    """Where one cluster's PKI files are; `<name>.crt`/`<name>.key` for each cert."""

    root: Path

    def cert(self, name: str) -> Path:
        """PEM certificate (or public key, for `sa`)."""
        return self.root / f"{name}.crt"

    def key(self, name: str) -> Path:
        """PEM private key."""
        return self.root / f"{name}.key"


def _write(paths: PkiPaths, name: str, issued: Issued) -> None:
    paths.cert(name).write_bytes(issued.cert)
    key_path = paths.key(name)
    key_path.touch(mode=0o600)
    key_path.write_bytes(issued.key)


def pki_complete(root: Path) -> bool:
    """Whether every file `write_pki` makes is there (a folder from an older version may lack some)."""
    paths = PkiPaths(root)
    names = ("ca", "apiserver", "sa", *CLIENTS)
    return all(paths.cert(name).exists() and paths.key(name).exists() for name in names)


def write_pki(*, root: Path, now: datetime.datetime, server_ips: tuple[str, ...] = ("127.0.0.1",)) -> PkiPaths:
    """Create (or replace) the CA, serving cert, client certs and SA key pair of one cluster under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    paths = PkiPaths(root)
    ca = new_ca(common_name="agentry-dev-ca", now=now)
    _write(paths, "ca", ca)
    serving = issue(ca=ca, subject=Subject("kube-apiserver"), now=now, dns_names=API_SERVER_NAMES, ips=server_ips)
    _write(paths, "apiserver", serving)
    for name, subject in CLIENTS.items():
        _write(paths, name, issue(ca=ca, subject=subject, now=now))
    _write(paths, "sa", new_signing_key())
    return paths
