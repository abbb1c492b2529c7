"""One named local cluster: start its components on loopback, wait until it serves, stop it without leftovers."""

from __future__ import annotations

import datetime
import functools
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agentry_dev.cluster import hostnode, node, processes
from agentry_dev.cluster.api import ApiClient
from agentry_dev.cluster.build import ensure_built, ensure_node_built
from agentry_dev.cluster.components import COMMANDS, kwok_node
from agentry_dev.cluster.layout import NODE_COMPONENTS, Layout, NodePorts, Ports, kubeconfig_document, read_state
from agentry_dev.cluster.network import HOST, choose_octet, first_service_ip, free_ports, is_listening
from agentry_dev.cluster.pki import CLIENTS, KUBELET_API_CLIENT, PkiPlan, node_clients, pki_complete, write_pki
from agentry_dev.cluster.versions import cache_root

NODE_NAME = "kwok-node-0"
"""The one fake node; KWOK keeps it Ready and runs every pod scheduled onto it."""

UP_TIMEOUT = 90.0
"""Seconds `up` waits for readiness before it gives up; a warm start needs well under 20."""

HOST_TOOLS = ("ip", "iptables", "iptables-save", "umount")
"""Host commands a real node needs besides its own binaries (Debian: iproute2, iptables, mount)."""


class ClusterError(RuntimeError):
    """A cluster could not start or stop; the message carries the tail of the component's log."""


def clusters_dir(root: Path) -> Path:
    """Parent of every named cluster's state folder."""
    return root / "clusters"


@dataclass
class Cluster:
    """A handle on one running (or stopping) local cluster."""

    layout: Layout
    pids: dict[str, int] = field(default_factory=dict)
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    """Processes this Python process started (so `down` can reap them); empty for a found cluster."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds from the start of `up` until each milestone was reached."""
    preload: tuple[Path, ...] = ()
    """Image archives a real node's containerd imports before the kubelet starts."""

    @property
    def name(self) -> str:
        """The cluster's name (its folder under `clusters/`)."""
        return self.layout.name

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (group system:masters)."""
        return self.layout.kubeconfig()

    @property
    def server(self) -> str:
        """API server URL."""
        return self.layout.server

    @property
    def bin_dir(self) -> Path:
        """Folder with kubectl, helm and the component binaries."""
        return self.layout.bin_dir

    def client(self) -> ApiClient:
        """An admin API client."""
        pki = self.layout.pki
        return ApiClient(self.server, ca=pki.cert("ca"), cert=pki.cert("admin"), key=pki.key("admin"))

    @classmethod
    def up(
        cls,
        name: str = "agentry",
        *,
        root: Path | None = None,
        timeout: float = UP_TIMEOUT,
        real_node: bool = False,
        preload: tuple[Path, ...] = (),
        sandbox_image: str | None = None,
    ) -> Cluster:
        """Start the named cluster (building binaries first if needed) and return once it serves.

        With `real_node`, a kubelet on containerd joins the KWOK nodes; `preload` names image archives (the pause
        image `sandbox_image` at least) imported into its containerd before the kubelet starts, since nothing can
        be pulled here.
        A cluster that already runs healthily is returned as it is; a half-dead one, or one without the node
        asked for, is stopped and started anew.
        """
        root = cache_root() if root is None else root
        bin_dir = ensure_node_built(root=root) if real_node else ensure_built(root=root)
        if real_node:
            _check_host()
            if sandbox_image is None or not preload:
                raise ClusterError("a real node needs its pause image: pass sandbox_image and its archive in preload")
        existing = cls.find(name, root=root)
        if existing is not None:
            if existing.is_healthy() and existing.layout.real_node == real_node:
                return existing
            existing.down()
        if real_node:
            _check_no_other_node(root, name=name)
        cluster = cls(_new_layout(name=name, root=root, bin_dir=bin_dir, real_node=real_node, sandbox=sandbox_image))
        cluster.preload = preload
        try:
            cluster._boot(timeout=timeout)
        except BaseException:
            cluster.down()
            raise
        return cluster

    @classmethod
    def find(cls, name: str, *, root: Path | None = None) -> Cluster | None:
        """The cluster a state file records (running or not), or None when it was never started."""
        root = cache_root() if root is None else root
        state = read_state(clusters_dir(root) / name / "state.json")
        return None if state is None else cls(state[0], state[1])

    def status(self) -> dict[str, bool]:
        """Whether each recorded component process is alive."""
        return {c: processes.is_running(pid=pid, binary=self.layout.binary(c)) for c, pid in self.pids.items()}

    def is_healthy(self) -> bool:
        """Every component is alive and the API server answers /readyz."""
        alive = self.status()
        return (
            set(alive) == set(self.layout.components)
            and all(alive.values())
            and self.client().request("GET", "/readyz").status == 200
        )

    def down(self, *, purge: bool = False) -> None:
        """Stop every component and check that none of its ports still listens.

        The etcd data goes (the next `up` starts empty anyway); logs, PKI and kubeconfigs stay for a post-mortem
        unless `purge` removes the cluster's whole folder.
        """
        started = time.monotonic()
        binaries = {c: self.layout.binary(c) for c in self.pids}
        processes.stop(pids=self.pids, binaries=binaries, children=self.children)
        self.timings["down: components stopped"] = round(time.monotonic() - started, 2)
        busy = _listening(list(vars(self.layout.ports).values()), patience=processes.REAP_TIMEOUT)
        if any(self.status().values()) or busy:
            raise ClusterError(f"cluster {self.name} left processes {self.status()} or ports {busy} behind")
        if self.layout.real_node:
            left = hostnode.teardown(self.layout, proxy_cleanup=node.kube_proxy_cleanup(self.layout))
            self.timings.update({f"down: {k}": v for k, v in left.seconds.items()})
            if left:
                raise ClusterError(f"cluster {self.name}: the real node left {left} behind")
        self.layout.state_file.unlink(missing_ok=True)
        shutil.rmtree(self.layout.root if purge else self.layout.etcd_data, ignore_errors=True)

    def _start(self, component: str) -> None:
        argv = COMMANDS[component](self.layout)
        # containerd finds its shim on PATH; the shim and runc must be the ones this cluster built or chose.
        env = {**os.environ, "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
        child = processes.start(argv=argv, log=self.layout.logs / f"{component}.log", env=env)
        self.children[component] = child
        self.pids[component] = child.pid
        if component in NODE_COMPONENTS:
            hostnode.join_node_cgroup(self.layout, child.pid)
        self.layout.state_file.write_text(self.layout.to_json(pids=self.pids))

    def _check_alive(self) -> None:
        for component, child in self.children.items():
            if child.poll() is not None:
                raise self._error(f"{component} exited with {child.returncode}", component)

    def _error(self, message: str, component: str) -> ClusterError:
        log = self.layout.logs / f"{component}.log"
        return ClusterError(f"cluster {self.name}: {message}; end of {log}:\n{processes.log_tail(log)}")

    def _wait(self, what: str, ready: Callable[[], bool], *, component: str, deadline: float, started: float) -> None:
        while not ready():
            self._check_alive()
            if time.monotonic() > deadline:
                raise self._error(f"timed out waiting for {what}", component)
            time.sleep(0.1)
        self.timings[what] = round(time.monotonic() - started, 2)

    def _boot(self, *, timeout: float) -> None:
        started = time.monotonic()
        deadline = started + timeout
        api = self.client()
        if self.layout.real_node:
            # The API server listens on the node's bridge, so the bridge comes first.
            hostnode.record_host(self.layout)
            hostnode.setup_network(self.layout)
            hostnode.make_cgroups(self.layout)
        self._start("etcd")
        self._wait(
            "etcd",
            lambda: _http_ok(f"http://{HOST}:{self.layout.ports.etcd_client}/health"),
            component="etcd",
            deadline=deadline,
            started=started,
        )
        self._start("kube-apiserver")
        self._wait(
            "readyz",
            lambda: api.request("GET", "/readyz").status == 200,
            component="kube-apiserver",
            deadline=deadline,
            started=started,
        )
        for component in ("kube-controller-manager", "kube-scheduler", "kwok"):
            self._start(component)
        self._wait(
            "node",
            lambda: _create_node(api, tainted=self.layout.real_node),
            component="kube-apiserver",
            deadline=deadline,
            started=started,
        )
        self._wait(
            "node Ready", lambda: _node_ready(api, NODE_NAME), component="kwok", deadline=deadline, started=started
        )
        self._wait(
            "default ServiceAccount",
            lambda: api.request("GET", "/api/v1/namespaces/default/serviceaccounts/default").status == 200,
            component="kube-controller-manager",
            deadline=deadline,
            started=started,
        )
        if self.layout.real_node:
            self._boot_node(api, deadline=deadline, started=started)

    def _boot_node(self, api: ApiClient, *, deadline: float, started: float) -> None:
        layout = self.layout
        self._wait(
            "kubelet API access",
            lambda: (
                api.request(
                    "POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", _kubelet_api_binding()
                ).status
                in (201, 409)
            ),
            component="kube-apiserver",
            deadline=deadline,
            started=started,
        )
        for path, body in node.coredns_rbac():
            self._wait(
                f"DNS access: {body['kind']}",
                functools.partial(_created, api, path, body),
                component="kube-apiserver",
                deadline=deadline,
                started=started,
            )
        self._start("containerd")
        self._wait(
            "containerd", layout.containerd_socket.exists, component="containerd", deadline=deadline, started=started
        )
        for archive in self.preload:
            self.import_image(archive)
        self.timings["images imported"] = round(time.monotonic() - started, 2)
        self._start("kubelet")
        self._start("kube-proxy")
        self._start("coredns")
        self._wait(
            "real node Ready",
            lambda: _node_ready(api, layout.node_name),
            component="kubelet",
            deadline=deadline,
            started=started,
        )
        ready = f"http://{HOST}:{node.ports(layout).dns_ready}/ready"
        self._wait("cluster DNS", lambda: _http_ok(ready), component="coredns", deadline=deadline, started=started)
        service = "/api/v1/namespaces/default/endpoints/kubernetes"
        self._wait(
            "kubernetes endpoints",
            lambda: layout.node_ip in api.request("GET", service).body,
            component="kube-apiserver",
            deadline=deadline,
            started=started,
        )

    def ctr(self, *args: str) -> list[str]:
        """A `ctr` command line against this cluster's containerd, in the kubelet's namespace."""
        return [str(self.bin_dir / "ctr"), "--address", str(self.layout.containerd_socket), "-n", "k8s.io", *args]

    def import_image(self, archive: Path) -> None:
        """Import an image archive (OCI or docker) into the node's containerd, where the kubelet finds it."""
        done = subprocess.run(self.ctr("images", "import", str(archive)), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ClusterError(f"cluster {self.name}: importing {archive} failed: {done.stderr.strip()}")


def _listening(ports: list[int], *, patience: float) -> list[int]:
    # A killed process's listener can outlive it by a moment while the kernel tears the process down.
    deadline = time.monotonic() + patience
    busy = [p for p in ports if is_listening(p)]
    while busy and time.monotonic() < deadline:
        time.sleep(0.05)
        busy = [p for p in busy if is_listening(p)]
    return busy


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _created(api: ApiClient, path: str, body: dict[str, Any]) -> bool:
    return api.request("POST", path, body).status in (201, 409)


def _create_node(api: ApiClient, *, tainted: bool) -> bool:
    return api.request("POST", "/api/v1/nodes", kwok_node(NODE_NAME, tainted=tainted)).status in (201, 409)


def _node_ready(api: ApiClient, name: str) -> bool:
    answer = api.request("GET", f"/api/v1/nodes/{name}")
    if answer.status != 200:
        return False
    conditions = answer.json().get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _running_others(root: Path, *, other_than: str) -> list[Layout]:
    """Layouts of the clusters under `root`, other than `other_than`, with at least one live component."""
    running = []
    for state_file in clusters_dir(root).glob("*/state.json"):
        found = read_state(state_file)
        if found is not None and found[0].name != other_than and any(Cluster(*found).status().values()):
            running.append(found[0])
    return running


def _taken_octets(root: Path, *, other_than: str) -> set[int]:
    return {layout.octet for layout in _running_others(root, other_than=other_than)}


def _kubelet_api_binding() -> dict[str, object]:
    # The bootstrap role for exactly what the API server does on a kubelet (logs, exec, port-forward, metrics).
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "agentry-dev:apiserver-kubelet-client"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:kubelet-api-admin"},
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "kube-apiserver-kubelet-client"}
        ],
    }


def _check_host() -> None:
    """A real node needs root and a few host commands; say which is missing instead of failing half-way."""
    if os.geteuid() != 0:
        raise ClusterError("a real node needs root (it creates a bridge, cgroups and mounts); run as root")
    missing = [tool for tool in HOST_TOOLS if shutil.which(tool) is None]
    missing += [
        str(p) for p in (node.RUNC, node.CNI_BIN_DIR / "bridge", node.CNI_BIN_DIR / "host-local") if not p.exists()
    ]
    if missing:
        raise ClusterError(f"a real node needs {', '.join(missing)}; `.ci/bootstrap` installs them (Debian packages)")


def _check_no_other_node(root: Path, *, name: str) -> None:
    # Two kubelets on one host would fight over the host's iptables and the kernel settings they restore.
    for layout in _running_others(root, other_than=name):
        if layout.real_node:
            other = layout.name
            raise ClusterError(
                f"cluster {other} already runs a real node on this host; stop it first "
                f"(`agentry dev down --name {other}` or `agentry dev cluster down --name {other}`)"
            )


def _pki_plan(layout: Layout) -> PkiPlan:
    if not layout.real_node:
        return PkiPlan()
    ips = (HOST, layout.node_ip, first_service_ip(layout.service_cidr))
    return PkiPlan(server_ips=ips, node_name=layout.node_name, node_ip=layout.node_ip)


def _write_node_files(layout: Layout) -> None:
    files = node.paths(layout)
    for key in ("containerd_root", "containerd_state", "run", "cni_conf", "cni_data", "kubelet_root", "pod_logs"):
        files[key].mkdir(parents=True, exist_ok=True)
    files["containerd_config"].write_text(node.containerd_config(layout))
    (files["cni_conf"] / "10-agentry.conflist").write_text(json.dumps(node.cni_conflist(layout), indent=2) + "\n")
    files["kubelet_config"].write_text(yaml.safe_dump(node.kubelet_config(layout), sort_keys=False))
    files["proxy_config"].write_text(yaml.safe_dump(node.kube_proxy_config(layout), sort_keys=False))
    files["resolv_conf"].write_text(node.resolv_conf())
    files["corefile"].write_text(node.corefile(layout))


def _new_layout(*, name: str, root: Path, bin_dir: Path, real_node: bool = False, sandbox: str | None = None) -> Layout:
    """Give the cluster fresh ports, a free pod range, an empty etcd, clean logs, PKI and kubeconfigs."""
    folder = clusters_dir(root) / name
    layout = Layout(
        name=name,
        root=folder,
        bin_dir=bin_dir,
        ports=Ports(*free_ports(6)),
        octet=choose_octet(name=name, taken=_taken_octets(root, other_than=name)),
        node_ports=NodePorts(*free_ports(5)) if real_node else None,
        sandbox_image=sandbox if real_node else None,
    )
    shutil.rmtree(layout.etcd_data, ignore_errors=True)
    shutil.rmtree(layout.logs, ignore_errors=True)
    layout.logs.mkdir(parents=True)
    plan = _pki_plan(layout)
    if not pki_complete(layout.pki.root, plan):
        write_pki(root=layout.pki.root, now=datetime.datetime.now(datetime.UTC), plan=plan)
    users = [*CLIENTS, *(node_clients(layout.node_name) if real_node else ())]
    for user in users:
        if user == KUBELET_API_CLIENT:
            continue
        document = kubeconfig_document(layout=layout, user=user)
        layout.kubeconfig(user).write_text(yaml.safe_dump(document, sort_keys=False))
    if real_node:
        # A node folder from a run that died may still hold mounts; never delete through them.
        left = hostnode.unmount_all(layout.node_root) if layout.node_root.exists() else []
        if left:
            raise ClusterError(f"cluster {name}: {layout.node_root} still has mounts {left}; unmount them first")
        shutil.rmtree(layout.node_root, ignore_errors=True)
        _write_node_files(layout)
    return layout
