"""Where one named cluster keeps its files, and the ports and pod range it was given."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agentry_dev.cluster.network import HOST
from agentry_dev.cluster.pki import PkiPaths

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
"""Start order; they stop in reverse."""


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
class Layout:
    """One cluster's state folder (`<cache>/clusters/<name>/`), its binaries, ports and pod range octet."""

    name: str
    root: Path
    bin_dir: Path
    ports: Ports
    octet: int

    @property
    def server(self) -> str:
        """The API server URL clients use."""
        return f"https://{HOST}:{self.ports.apiserver}"

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
