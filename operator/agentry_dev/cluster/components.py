"""The command line of each control-plane component, as a pure function of a cluster's layout."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentry_dev.cluster import node
from agentry_dev.cluster.layout import Layout
from agentry_dev.cluster.network import HOST, pod_cidr
from agentry_dev.cluster.pki import KUBELET_API_CLIENT
from agentry_dev.cluster.versions import kwok_stages_file

SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
"""The `iss` of ServiceAccount tokens; also their default audience."""

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node=fake"
"""KWOK manages only nodes carrying this annotation, so a real kubelet's node would be left alone."""


def etcd(layout: Layout) -> list[str]:
    """Single-member etcd without fsync: the data is thrown away at the next `up` anyway."""
    client = f"http://{HOST}:{layout.ports.etcd_client}"
    peer = f"http://{HOST}:{layout.ports.etcd_peer}"
    return [
        str(layout.binary("etcd")),
        "--name=default",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def kube_apiserver(layout: Layout) -> list[str]:
    """API server with RBAC and real ServiceAccount tokens, on loopback or, with a real node, on the node's bridge.

    Without a real node, `--endpoint-reconciler-type=none`: the API server refuses loopback addresses in Endpoints,
    so it must not try to publish its own address in the `kubernetes` Service. With one, it listens on the node IP
    and publishes it there, so pods (the operator among them) reach it through the `kubernetes` Service.
    """
    pki = layout.pki
    return [
        str(layout.binary("kube-apiserver")),
        f"--etcd-servers=http://{HOST}:{layout.ports.etcd_client}",
        f"--bind-address={layout.host}",
        f"--advertise-address={layout.host}",
        f"--secure-port={layout.ports.apiserver}",
        f"--endpoint-reconciler-type={'lease' if layout.real_node else 'none'}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=true",
        f"--service-cluster-ip-range={layout.service_cidr}",
        f"--tls-cert-file={pki.cert('apiserver')}",
        f"--tls-private-key-file={pki.key('apiserver')}",
        f"--client-ca-file={pki.cert('ca')}",
        f"--service-account-issuer={SA_ISSUER}",
        f"--service-account-key-file={pki.cert('sa')}",
        f"--service-account-signing-key-file={pki.key('sa')}",
        *_request_header_flags(layout),
        *_kubelet_client_flags(layout),
    ]


def _kubelet_client_flags(layout: Layout) -> list[str]:
    # The API server proves who it is to the kubelet (which asks back whether that identity may) and checks the
    # kubelet's serving certificate against the cluster CA: logs, exec and port-forward are authenticated both ways.
    if not layout.real_node:
        return []
    pki = layout.pki
    return [
        f"--kubelet-client-certificate={pki.cert(KUBELET_API_CLIENT)}",
        f"--kubelet-client-key={pki.key(KUBELET_API_CLIENT)}",
        f"--kubelet-certificate-authority={pki.cert('ca')}",
        "--kubelet-preferred-address-types=InternalIP",
    ]


def _request_header_flags(layout: Layout) -> list[str]:
    # Without these, every component that delegates authentication logs "missing content for CA bundle" and
    # aggregated API servers (metrics-server and the like) cannot trust the API server's proxied requests.
    pki = layout.pki
    return [
        f"--requestheader-client-ca-file={pki.cert('ca')}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki.cert('front-proxy')}",
        f"--proxy-client-key-file={pki.key('front-proxy')}",
    ]


def kube_controller_manager(layout: Layout) -> list[str]:
    """Controllers with one ServiceAccount per controller, as on a real cluster (its RBAC is tested too)."""
    pki = layout.pki
    kubeconfig = layout.kubeconfig("controller-manager")
    return [
        str(layout.binary("kube-controller-manager")),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={HOST}",
        f"--secure-port={layout.ports.controller_manager}",
        "--leader-elect=false",
        f"--service-account-private-key-file={pki.key('sa')}",
        f"--root-ca-file={pki.cert('ca')}",
        "--use-service-account-credentials=true",
        f"--cluster-signing-cert-file={pki.cert('ca')}",
        f"--cluster-signing-key-file={pki.key('ca')}",
    ]


def kube_scheduler(layout: Layout) -> list[str]:
    """Scheduler without leader election (one replica), so it schedules from its first second."""
    kubeconfig = layout.kubeconfig("scheduler")
    return [
        str(layout.binary("kube-scheduler")),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={HOST}",
        f"--secure-port={layout.ports.scheduler}",
        "--leader-elect=false",
    ]


def kwok(layout: Layout) -> list[str]:
    """KWOK in place of kubelets: annotated nodes stay Ready, their pods Running with loopback IPs."""
    stages = kwok_stages_file(bin_dir=layout.bin_dir)
    return [
        str(layout.binary("kwok")),
        f"--kubeconfig={layout.kubeconfig('kwok')}",
        f"--config={stages}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}",
        "--manage-nodes-with-label-selector=",
        f"--cidr={pod_cidr(layout.octet)}",
        f"--node-ip={HOST}",
        "--node-lease-duration-seconds=40",
        f"--server-address={HOST}:{layout.ports.kwok}",
    ]


COMMANDS: dict[str, Callable[[Layout], list[str]]] = {
    "etcd": etcd,
    "kube-apiserver": kube_apiserver,
    "kube-controller-manager": kube_controller_manager,
    "kube-scheduler": kube_scheduler,
    "kwok": kwok,
    "containerd": node.containerd,
    "kubelet": node.kubelet,
    "kube-proxy": node.kube_proxy,
    "coredns": node.coredns,
}
"""Command line builder of each component, in start order."""


KWOK_TAINT = {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}
"""On a cluster with a real node, KWOK's node takes only pods that tolerate this (scale tests); the rest run for
real."""


def kwok_node(name: str, *, tainted: bool = False) -> dict[str, Any]:
    """A Node object KWOK will keep Ready; untainted unless a real node is there, so ordinary workloads land on it."""
    annotation_key, annotation_value = KWOK_NODE_ANNOTATION.split("=")
    labels = {
        "type": "kwok",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/role": "agent",
    }
    # A fake node: room for every pod a benchmark or a test session makes (a kubelet would say 110), disk
    # (ephemeral-storage) included, since agent pods request theirs as a kubelet's node would offer it.
    resources = {"cpu": "1000", "memory": "4Ti", "ephemeral-storage": "4Ti", "pods": "1000"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {annotation_key: annotation_value, "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"taints": [KWOK_TAINT]} if tainted else {},
        "status": {"allocatable": resources, "capacity": resources},
    }
