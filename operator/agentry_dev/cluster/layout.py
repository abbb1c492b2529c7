"""Where one named cluster keeps its files, and the ports and pod range it was given."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agentry_dev.cluster.network import (
    HOST,
    bridge_name,
    node_ip,
    node_service_cidr,
    node_subnet,
    service_cidr,
)
from agentry_dev.cluster.pki import PkiPaths

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
"""Start order of the control plane (KWOK included: it runs the fake nodes); they stop in reverse."""

NODE_COMPONENTS = ("containerd", "kubelet", "kube-proxy", "coredns")
"""The real node's daemons, started after the control plane serves."""


@dataclass(frozen=True)
class Ports:
    """Loopback ports of one cluster's listeners."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int


@dataclass(frozen=True)
class NodePorts:
    """Listeners of the real node's daemons; the kubelet's API on the node IP, health and metrics on loopback."""

    kubelet: int
    kubelet_healthz: int
    proxy_healthz: int
    proxy_metrics: int
    dns_ready: int
    """CoreDNS's readiness endpoint (on loopback); DNS itself answers on the node IP, port 53."""


@dataclass(frozen=True)
class Layout:
    """One cluster's state folder (`<cache>/clusters/<name>/`), its binaries, ports and pod range octet."""

    name: str
    root: Path
    bin_dir: Path
    ports: Ports
    octet: int
    node_ports: NodePorts | None = None
    """Set when the cluster has a real node (containerd, kubelet, kube-proxy); None for KWOK nodes only."""
    sandbox_image: str | None = None
    """The real node's pause image (`repository:tag`), imported before the kubelet starts and pinned."""

    @property
    def real_node(self) -> bool:
        """Whether this cluster runs a real kubelet next to its KWOK nodes."""
        return self.node_ports is not None

    @property
    def components(self) -> tuple[str, ...]:
        """Every process of this cluster, in start order."""
        return CONTROL_PLANE + (NODE_COMPONENTS if self.real_node else ())

    @property
    def host(self) -> str:
        """The API server's address: loopback, or the node IP on the bridge when pods must reach it too."""
        return node_ip(self.octet) if self.real_node else HOST

    @property
    def service_cidr(self) -> str:
        """ClusterIPs: on loopback without a real node, on the bridge with one."""
        return node_service_cidr(self.octet) if self.real_node else service_cidr(self.octet)

    @property
    def node_name(self) -> str:
        """The real node's name (and the kubelet's identity `system:node:<name>`)."""
        return f"{self.name}-node"

    @property
    def bridge(self) -> str:
        """The real node's Linux bridge."""
        return bridge_name(self.octet)

    @property
    def node_subnet(self) -> str:
        """The real node's pod and node addresses."""
        return node_subnet(self.octet)

    @property
    def node_ip(self) -> str:
        """The real node's address."""
        return node_ip(self.octet)

    @property
    def node_root(self) -> Path:
        """State of the real node: containerd's root and state, the kubelet's root, CNI, pod logs."""
        return self.root / "node"

    @property
    def containerd_socket(self) -> Path:
        """The gRPC socket of containerd socket (the kubelet's CRI endpoint and `ctr --address`)."""
        return self.node_root / "run" / "containerd.sock"

    @property
    def cgroup_name(self) -> str:
        """The cgroup (in every hierarchy) that holds the node's daemons, shims and pods, so `down` finds them all."""
        return f"agentry-{self.name}"

    @property
    def server(self) -> str:
        """The API server URL clients use."""
        return f"https://{self.host}:{self.ports.apiserver}"

    @property
    def pki(self) -> PkiPaths:
        """Certificates and keys."""
        return PkiPaths(self.root / "pki")

    @property
    def logs(self) -> Path:
        """One `<component>.log` per component."""
        return self.root / "logs"

    @property
    def etcd_data(self) -> Path:
        """The data folder of etcd; wiped on every `up` so a cluster always starts empty."""
        return self.root / "etcd"

    @property
    def state_file(self) -> Path:
        """JSON record of the running cluster: layout and the pid of each component."""
        return self.root / "state.json"

    def kubeconfig(self, user: str = "admin") -> Path:
        """Kubeconfig of one client identity (see `pki.CLIENTS`); `admin` is the one handed to people."""
        return self.root / f"{user}.kubeconfig"

    def binary(self, component: str) -> Path:
        """Path of a built executable."""
        return self.bin_dir / component

    def to_json(self, *, pids: dict[str, int]) -> str:
        """The state file's text."""
        body: dict[str, Any] = {
            **asdict(self),
            "root": str(self.root),
            "bin_dir": str(self.bin_dir),
            "server": self.server,
            "pids": pids,
        }
        return json.dumps(body, indent=2) + "\n"


def read_state(path: Path) -> tuple[Layout, dict[str, int]] | None:
    """The layout and pids a state file records; None when there is none or it is unreadable."""
    try:
        body = json.loads(path.read_text())
        layout = Layout(
            name=body["name"],
            root=Path(body["root"]),
            bin_dir=Path(body["bin_dir"]),
            ports=Ports(**body["ports"]),
            octet=int(body["octet"]),
            node_ports=NodePorts(**body["node_ports"]) if body.get("node_ports") else None,
            sandbox_image=body.get("sandbox_image"),
        )
        return layout, {str(k): int(v) for k, v in body["pids"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def kubeconfig_document(*, layout: Layout, user: str) -> dict[str, Any]:
    """A kubeconfig that points at this cluster with one client certificate (file paths, not inline data)."""
    cluster = {"server": layout.server, "certificate-authority": str(layout.pki.cert("ca"))}
    credentials = {"client-certificate": str(layout.pki.cert(user)), "client-key": str(layout.pki.key(user))}
    context = {"cluster": layout.name, "user": user}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": layout.name,
        "clusters": [{"name": layout.name, "cluster": cluster}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": layout.name, "context": context}],
        "preferences": {},
    }
