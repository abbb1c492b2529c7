"""The real node's configuration, without starting it: addresses, authentication, and what it may change."""

from __future__ import annotations

import datetime
import ipaddress
import tomllib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from agentry_dev.cluster import components, node
from agentry_dev.cluster.layout import NODE_COMPONENTS, Layout, NodePorts, Ports, read_state
from agentry_dev.cluster.network import first_service_ip
from agentry_dev.cluster.pki import PkiPlan, pki_complete, write_pki

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)


def _layout(tmp_path: Path, *, real: bool = True) -> Layout:
    return Layout(
        name="demo",
        root=tmp_path / "demo",
        bin_dir=tmp_path / "bin",
        ports=Ports(1, 2, 3, 4, 5, 6),
        octet=42,
        node_ports=NodePorts(7, 8, 9, 10, 11) if real else None,
        sandbox_image="localhost/agentry/pause:abc" if real else None,
    )


def test_a_real_node_puts_the_api_server_and_services_on_its_bridge(tmp_path: Path) -> None:
    layout = _layout(tmp_path)

    assert layout.server == "https://10.213.42.1:3"
    assert layout.service_cidr == "10.214.42.0/24"
    assert layout.components[-len(NODE_COMPONENTS) :] == NODE_COMPONENTS
    argv = components.kube_apiserver(layout)
    assert "--bind-address=10.213.42.1" in argv
    assert "--endpoint-reconciler-type=lease" in argv
    assert "--service-cluster-ip-range=10.214.42.0/24" in argv
    assert f"--kubelet-client-certificate={layout.pki.cert('apiserver-kubelet-client')}" in argv
    assert f"--kubelet-certificate-authority={layout.pki.cert('ca')}" in argv


def test_without_a_real_node_everything_stays_on_loopback(tmp_path: Path) -> None:
    layout = _layout(tmp_path, real=False)

    assert layout.server == "https://127.0.0.1:3"
    assert not any(a.startswith("--kubelet-client") for a in components.kube_apiserver(layout))
    with pytest.raises(ValueError, match="has no real node"):
        node.kubelet_config(layout)


def test_every_address_of_the_node_is_inside_its_own_private_ranges(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    subnet = ipaddress.ip_network(layout.node_subnet)
    services = ipaddress.ip_network(layout.service_cidr)
    ranges = node.cni_conflist(layout)["plugins"][0]["ipam"]["ranges"][0][0]

    assert subnet.is_private and services.is_private and not subnet.overlaps(services)
    assert ipaddress.ip_address(layout.node_ip) in subnet
    assert ipaddress.ip_address(ranges["rangeStart"]) in subnet
    assert ipaddress.ip_address(ranges["rangeEnd"]) in subnet
    assert first_service_ip(layout.service_cidr) == "10.214.42.1"


def test_cni_neither_masquerades_nor_gives_pods_a_default_route(tmp_path: Path) -> None:
    bridge = node.cni_conflist(_layout(tmp_path))["plugins"][0]

    assert bridge["isGateway"] is False and bridge["ipMasq"] is False
    routes = [r["dst"] for r in bridge["ipam"]["routes"]]
    assert routes == ["10.214.42.0/24"]
    assert "0.0.0.0/0" not in routes


def test_kubelet_authenticates_and_authorizes_every_caller(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    config = node.kubelet_config(layout)

    assert config["authentication"]["anonymous"] == {"enabled": False}
    assert config["authentication"]["webhook"]["enabled"] is True
    assert config["authentication"]["x509"]["clientCAFile"] == str(layout.pki.cert("ca"))
    assert config["authorization"]["mode"] == "Webhook"
    assert config["readOnlyPort"] == 0
    assert config["failCgroupV1"] is False
    assert config["cgroupRoot"] == "/agentry-demo/pods"


def test_every_path_the_node_writes_is_under_the_cluster_folder(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    config = tomllib.loads(node.containerd_config(layout))
    kubelet = node.kubelet_config(layout)
    written = [
        config["root"],
        config["state"],
        config["grpc"]["address"],
        kubelet["podLogsDir"],
        kubelet["resolvConf"],
        *[str(p) for p in node.paths(layout).values()],
    ]

    assert all(Path(p).is_relative_to(layout.root) for p in written), written
    cri = config["plugins"]["io.containerd.cri.v1.runtime"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["netns_mounts_under_state_dir"] is True
    assert config["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == "localhost/agentry/pause:abc"


def test_kube_proxy_changes_no_kernel_setting(tmp_path: Path) -> None:
    config = node.kube_proxy_config(_layout(tmp_path))

    assert config["iptables"]["localhostNodePorts"] is False
    assert config["conntrack"]["maxPerCore"] == 0 and config["conntrack"]["min"] == 0
    assert config["nodePortAddresses"] == ["10.213.42.1/32"]


def test_node_pki_gives_the_kubelet_its_node_identity(tmp_path: Path) -> None:
    plan = PkiPlan(server_ips=("127.0.0.1", "10.213.42.1"), node_name="demo-node", node_ip="10.213.42.1")
    paths = write_pki(root=tmp_path, now=NOW, plan=plan)

    client = x509.load_pem_x509_certificate(paths.cert("kubelet").read_bytes())
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:demo-node"
    assert client.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:nodes"
    serving = x509.load_pem_x509_certificate(paths.cert("kubelet-serving").read_bytes())
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("10.213.42.1") in names.get_values_for_type(x509.IPAddress)
    assert pki_complete(tmp_path, plan)
    assert not pki_complete(tmp_path, PkiPlan()), "a PKI made for other addresses is made anew"


def test_state_file_keeps_the_node_ports(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    layout.root.mkdir()
    layout.state_file.write_text(layout.to_json(pids={"kubelet": 10}))

    assert read_state(layout.state_file) == (layout, {"kubelet": 10})


def test_cluster_dns_serves_the_cluster_domain_on_the_node_ip_and_forwards_nothing(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    corefile = node.corefile(layout)

    assert "bind 10.213.42.1" in corefile
    assert "kubernetes cluster.local" in corefile
    assert "forward" not in corefile, "no upstream resolver exists here; nothing leaves the machine"
    assert node.kubelet_config(layout)["clusterDNS"] == ["10.213.42.1"]
    role = dict(node.coredns_rbac())["/apis/rbac.authorization.k8s.io/v1/clusterroles"]
    assert {v for rule in role["rules"] for v in rule["verbs"]} == {"list", "watch"}, "read-only"
