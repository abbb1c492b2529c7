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

KUBELET_API_CLIENT = "apiserver-kubelet-client"
"""The API server's client certificate towards kubelets (logs, exec, port-forward); bound to the bootstrap role
`system:kubelet-api-admin` at `up`, so it may do exactly that on every node and nothing else."""


COREDNS_USER = "agentry-dev:coredns"
"""The cluster DNS's identity; `up` grants it read access to Services, EndpointSlices and namespaces."""


def node_clients(node_name: str) -> dict[str, Subject]:
    """Client identities of a real node: the kubelet, kube-proxy, and the API server towards the kubelet.

    The kubelet is `system:node:<name>` in `system:nodes` (what the Node authorizer and NodeRestriction admit),
    kube-proxy the bootstrap `system:kube-proxy`.
    """
    return {
        "kubelet": Subject(f"system:node:{node_name}", ("system:nodes",)),
        "kube-proxy": Subject("system:kube-proxy"),
        "coredns": Subject(COREDNS_USER),
        KUBELET_API_CLIENT: Subject("kube-apiserver-kubelet-client"),
    }


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


@dataclass(frozen=True)
class PkiPlan:
    """What one cluster's PKI must hold: the API server's IPs and, with a real node, the node's name and IP."""

    server_ips: tuple[str, ...] = ("127.0.0.1",)
    node_name: str | None = None
    node_ip: str | None = None

    def names(self) -> tuple[str, ...]:
        """Every cert/key pair written."""
        node = (*node_clients(self.node_name), "kubelet-serving") if self.node_name else ()
        return ("ca", "apiserver", "sa", *CLIENTS, *node)

    def stamp(self) -> str:
        """Recorded beside the files: a PKI made for other addresses or another node is made anew."""
        return f"{self.server_ips} {self.node_name} {self.node_ip}\n"


STAMP = "plan.txt"


def pki_complete(root: Path, plan: PkiPlan | None = None) -> bool:
    """Whether every file `write_pki` makes for `plan` is there (a folder from an older version may lack some)."""
    plan = PkiPlan() if plan is None else plan
    paths = PkiPaths(root)
    stamp = root / STAMP
    if not stamp.exists() or stamp.read_text() != plan.stamp():
        return False
    return all(paths.cert(name).exists() and paths.key(name).exists() for name in plan.names())


def write_pki(*, root: Path, now: datetime.datetime, plan: PkiPlan | None = None) -> PkiPaths:
    """Create (or replace) the CA, serving certs, client certs and SA key pair of one cluster under `root`."""
    plan = PkiPlan() if plan is None else plan
    root.mkdir(parents=True, exist_ok=True)
    paths = PkiPaths(root)
    ca = new_ca(common_name="agentry-dev-ca", now=now)
    _write(paths, "ca", ca)
    serving = issue(ca=ca, subject=Subject("kube-apiserver"), now=now, dns_names=API_SERVER_NAMES, ips=plan.server_ips)
    _write(paths, "apiserver", serving)
    clients = {**CLIENTS, **(node_clients(plan.node_name) if plan.node_name else {})}
    for name, subject in clients.items():
        _write(paths, name, issue(ca=ca, subject=subject, now=now))
    if plan.node_name and plan.node_ip:
        kubelet = issue(
            ca=ca,
            subject=Subject(f"system:node:{plan.node_name}"),
            now=now,
            dns_names=(plan.node_name,),
            ips=(plan.node_ip,),
        )
        _write(paths, "kubelet-serving", kubelet)
    _write(paths, "sa", new_signing_key())
    (root / STAMP).write_text(plan.stamp())
    return paths
