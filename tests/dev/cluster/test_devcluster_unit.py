"""Pure parts of the local control plane: versions, build inputs, ports, pod ranges, PKI, layout and argv."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import ipaddress
import socket
import stat
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agentry_dev.cluster import build, commands, components, network
from agentry_dev.cluster.cluster import Cluster, ClusterError
from agentry_dev.cluster.layout import Layout, Ports, kubeconfig_document, read_state
from agentry_dev.cluster.pki import write_pki
from agentry_dev.cluster.versions import BINARIES, PINNED, Versions, bin_dir, cache_root, kwok_stages_file

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def test_staging_modules_follow_the_kubernetes_release() -> None:
    assert Versions(kubernetes="1.35.4").staging == "v0.35.4"


@pytest.mark.parametrize("field", ["kubernetes", "etcd", "kwok", "kubectl_wheel"])
def test_every_pinned_version_changes_the_cache_key(field: str) -> None:
    bumped = dataclasses.replace(PINNED, **{field: getattr(PINNED, field) + "9"})

    assert bumped.key != PINNED.key
    assert PINNED.key.startswith(f"k8s-{PINNED.kubernetes}-")


def test_cache_lives_outside_the_clone_unless_configured(tmp_path: Path) -> None:
    assert cache_root(environ={"HOME": "/home/dev"}) == Path("/home/dev/.cache/agentry")
    assert cache_root(environ={"HOME": "/x", "AGENTRY_CACHE": str(tmp_path)}) == tmp_path
    assert bin_dir(root=tmp_path) == tmp_path / PINNED.key / "bin"


def test_go_mod_replaces_every_staging_module_with_its_release() -> None:
    text = build.kubernetes_go_mod(versions=PINNED)

    for module in build.STAGING_MODULES:
        assert f"k8s.io/{module} => k8s.io/{module} {PINNED.staging}\n" in text


def test_ldflags_stamp_the_release_into_server_and_client_version_packages() -> None:
    flags = build.version_ldflags(versions=PINNED)

    assert flags.startswith("-s -w ")
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {package}.gitVersion=v{PINNED.kubernetes}" in flags
        assert f"-X {package}.gitMinor={PINNED.kubernetes.split('.')[1]}" in flags


def _fake_complete_cache(root: Path) -> Path:
    folder = bin_dir(root=root)
    folder.mkdir(parents=True)
    for name in BINARIES:
        (folder / name).write_text("")
    kwok_stages_file(bin_dir=folder).parent.mkdir()
    kwok_stages_file(bin_dir=folder).write_text("")
    return folder


def test_a_warm_build_only_checks_the_marker(tmp_path: Path) -> None:
    folder = _fake_complete_cache(tmp_path)
    assert not build.is_complete(root=tmp_path)
    (folder.parent / build.MARKER).write_text("{}")

    started = time.monotonic()
    assert build.ensure_built(root=tmp_path) == folder
    assert time.monotonic() - started < 0.5


def test_a_missing_binary_makes_the_build_incomplete_despite_the_marker(tmp_path: Path) -> None:
    folder = _fake_complete_cache(tmp_path)
    (folder.parent / build.MARKER).write_text("{}")
    (folder / "kwok").unlink()

    assert not build.is_complete(root=tmp_path)


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = network.free_ports(6)

    assert len(set(ports)) == 6
    for port in ports:
        with socket.socket() as sock:
            sock.bind((network.HOST, port))


def test_is_listening_sees_a_listener() -> None:
    with socket.socket() as sock:
        sock.bind((network.HOST, 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert network.is_listening(port)
    assert not network.is_listening(port)


def test_octet_is_stable_per_name_and_avoids_taken_ones() -> None:
    first = network.choose_octet(name="agentry", taken=())

    assert network.choose_octet(name="agentry", taken=()) == first
    assert network.FIRST_OCTET <= first <= network.LAST_OCTET
    assert network.choose_octet(name="agentry", taken={first}) != first


def test_octet_choice_fails_when_every_range_is_taken() -> None:
    with pytest.raises(RuntimeError, match="taken"):
        network.choose_octet(name="x", taken=range(network.FIRST_OCTET, network.LAST_OCTET + 1))


@pytest.mark.parametrize("octet", [network.FIRST_OCTET, 77, network.LAST_OCTET])
def test_pod_and_service_ranges_are_loopback_and_disjoint(octet: int) -> None:
    pods = ipaddress.IPv4Network(network.pod_cidr(octet))
    services = ipaddress.IPv4Network(network.service_cidr(octet))

    assert pods.prefixlen == 16 and pods.subnet_of(ipaddress.IPv4Network("127.0.0.0/8"))
    assert services.is_loopback and not services.overlaps(pods)
    assert ipaddress.IPv4Address(network.HOST) not in pods


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_pki_serving_cert_is_signed_by_the_ca_for_loopback_and_in_cluster_names(tmp_path: Path) -> None:
    paths = write_pki(root=tmp_path, now=NOW)
    ca, serving = _cert(paths.cert("ca")), _cert(paths.cert("apiserver"))

    serving.verify_directly_issued_by(ca)
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert "kubernetes.default.svc" in names.get_values_for_type(x509.DNSName)
    usage = serving.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage


@pytest.mark.parametrize(
    ("client", "user", "groups"),
    [
        ("admin", "kubernetes-admin", ["system:masters"]),
        ("controller-manager", "system:kube-controller-manager", []),
        ("scheduler", "system:kube-scheduler", []),
    ],
)
def test_pki_client_certs_name_the_user_and_groups(tmp_path: Path, client: str, user: str, groups: list[str]) -> None:
    paths = write_pki(root=tmp_path, now=NOW)
    cert = _cert(paths.cert(client))

    cert.verify_directly_issued_by(_cert(paths.cert("ca")))
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [user]
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == groups
    assert stat.S_IMODE(paths.key(client).stat().st_mode) == 0o600


def test_pki_service_account_key_is_a_public_key(tmp_path: Path) -> None:
    paths = write_pki(root=tmp_path, now=NOW)

    assert isinstance(load_pem_public_key(paths.cert("sa").read_bytes()), ec.EllipticCurvePublicKey)


def _layout(tmp_path: Path) -> Layout:
    return Layout(
        name="demo", root=tmp_path / "demo", bin_dir=tmp_path / "bin", ports=Ports(1, 2, 3, 4, 5, 6), octet=42
    )


def test_state_file_round_trips(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    layout.root.mkdir()
    layout.state_file.write_text(layout.to_json(pids={"etcd": 10}))

    assert read_state(layout.state_file) == (layout, {"etcd": 10})
    assert read_state(tmp_path / "missing.json") is None


def test_kubeconfig_points_at_the_server_with_the_users_cert(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    document = kubeconfig_document(layout=layout, user="scheduler")

    assert document["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:3"
    assert document["users"][0]["user"]["client-certificate"] == str(layout.pki.cert("scheduler"))


def test_apiserver_flags_cover_loopback_rbac_and_service_account_tokens(tmp_path: Path) -> None:
    argv = components.kube_apiserver(_layout(tmp_path))

    for flag in (
        "--advertise-address=127.0.0.1",
        "--endpoint-reconciler-type=none",
        "--authorization-mode=Node,RBAC",
        "--secure-port=3",
        "--etcd-servers=http://127.0.0.1:1",
        "--service-cluster-ip-range=127.255.42.0/24",
    ):
        assert flag in argv
    assert any(a.startswith("--service-account-signing-key-file=") for a in argv)


def test_kwok_hands_out_pod_ips_from_the_clusters_loopback_range(tmp_path: Path) -> None:
    argv = components.kwok(_layout(tmp_path))

    assert "--cidr=127.42.0.0/16" in argv and "--node-ip=127.0.0.1" in argv
    assert "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake" in argv


def test_kwok_node_carries_the_annotation_kwok_manages() -> None:
    node = components.kwok_node("n0")

    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"


def test_a_component_that_dies_fails_up_with_the_tail_of_its_log(tmp_path: Path) -> None:
    folder = _fake_complete_cache(tmp_path)
    (folder.parent / build.MARKER).write_text("{}")
    etcd = folder / "etcd"
    etcd.write_text("#!/bin/sh\necho 'etcd: cannot open data dir (fake)'\nexit 3\n")
    etcd.chmod(0o755)

    with pytest.raises(ClusterError, match=r"(?s)etcd exited with 3.*cannot open data dir \(fake\)"):
        Cluster.up("broken", root=tmp_path, timeout=10)
    assert Cluster.find("broken", root=tmp_path) is None


def test_dev_cluster_commands_register_next_to_other_dev_commands() -> None:
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers(dest="command")
    dev = commands.register(subparsers)
    dev.add_parser("up").set_defaults(func=lambda args: 0)

    args = parser.parse_args(["dev", "cluster", "down", "--name", "x", "--purge"])
    assert (args.name, args.purge, args.func.__name__) == ("x", True, "_down")
    assert commands.dev_subparsers(subparsers) is dev
    assert parser.parse_args(["dev", "up"]).func(args) == 0
