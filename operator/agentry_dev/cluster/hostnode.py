"""The host side of a real node: bridge, route, forwarding guard, cgroups, kernel settings, and their removal.

Made at `up`; removed at `down` together with every process, mount, interface and rule the node's daemons left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agentry_dev.cluster import node
from agentry_dev.cluster.layout import Layout

CGROUP_ROOT = Path("/sys/fs/cgroup")

SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/forwarding",
    "net/ipv4/conf/all/route_localnet",
)
"""Kernel settings the kubelet (its kernel tunables), kube-proxy or the CNI plugins may change; their values
before the first `up` are recorded and put back by `down`."""

LEGACY_LOG_LINKS = Path("/var/log/containers")
"""The kubelet's symlinks to pod logs: a fixed path in the kubelet, so `down` removes the ones into this node."""

CNI_CACHE = Path("/var/lib/cni")
"""libcni's result cache (a fixed path in containerd's CNI use); `down` removes this network's entries."""

SHIM_SOCKETS = Path("/run/containerd/s")
"""Where containerd's runc shims put their sockets, whatever the state folder; `down` removes the dead ones."""

HOST_FOLDERS = (LEGACY_LOG_LINKS, CNI_CACHE / "results", CNI_CACHE, SHIM_SOCKETS, SHIM_SOCKETS.parent)
"""Fixed host folders the node's daemons create when missing; those that were missing before `up` go at `down`
once empty (children before parents)."""

KILL_PATIENCE = 10.0
"""Seconds `down` keeps killing what is in the node's cgroups before it reports what survived."""


class HostNodeError(RuntimeError):
    """A host command of the real node failed; the message has the command and its output."""


def _run(argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    if check and done.returncode != 0:
        raise HostNodeError(f"{' '.join(argv)} failed (exit {done.returncode}): {done.stderr.strip()}")
    return done


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name


def read_sysctls(names: tuple[str, ...] = SYSCTLS) -> dict[str, str]:
    """Current values of the kernel settings that exist on this kernel."""
    values = {}
    for name in names:
        try:
            values[name] = _sysctl_path(name).read_text().strip()
        except OSError:
            continue
    return values


def _snapshot_file(layout: Layout) -> Path:
    return layout.node_root / "sysctl-before.json"


def _missing_file(layout: Layout) -> Path:
    return layout.node_root / "host-folders-missing.json"


def record_host(layout: Layout) -> None:
    """Record kernel settings and missing host folders, once: a record left by a run that died is kept."""
    snapshot = _snapshot_file(layout)
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    if not snapshot.exists():
        snapshot.write_text(json.dumps(read_sysctls(), indent=2) + "\n")
    missing = _missing_file(layout)
    if not missing.exists():
        missing.write_text(json.dumps([str(p) for p in HOST_FOLDERS if not p.exists()]) + "\n")


def restore_sysctls(layout: Layout) -> dict[str, str]:
    """Put back what `record_sysctls` saw; returns the settings that still differ afterwards (none, normally)."""
    snapshot = _snapshot_file(layout)
    if not snapshot.exists():
        return {}
    before: dict[str, str] = json.loads(snapshot.read_text())
    for name, value in before.items():
        if read_sysctls((name,)).get(name) != value:
            _sysctl_path(name).write_text(value + "\n")
    after = read_sysctls(tuple(before))
    differ = {name: after.get(name, "") for name, value in before.items() if after.get(name) != value}
    if not differ:
        snapshot.unlink()
    return differ


def _guard_rule(layout: Layout) -> list[str]:
    # Pods may reach the node and each other, never anything beyond the bridge (there is no default route in a
    # pod either; this holds even for a pod that could add one).
    return ["FORWARD", "-i", layout.bridge, "!", "-o", layout.bridge, "-m", "comment", "--comment",
            f"agentry:{layout.name}", "-j", "DROP"]  # fmt: skip


def setup_network(layout: Layout) -> None:
    """The bridge with the node's address, forwarding on the bridge alone, a route to the Service range over it."""
    teardown_network(layout)
    prefix = layout.node_subnet.split("/", 1)[1]
    _run(["ip", "link", "add", layout.bridge, "type", "bridge"])
    _run(["ip", "addr", "add", f"{layout.node_ip}/{prefix}", "dev", layout.bridge])
    _run(["ip", "link", "set", layout.bridge, "up"])
    # Per-interface forwarding: packets that arrive on the bridge (pod to Service to pod) may be routed; nothing
    # arriving on any other interface is, and ip_forward stays as it was.
    _sysctl_path(f"net/ipv4/conf/{layout.bridge}/forwarding").write_text("1\n")
    _run(["ip", "route", "add", layout.service_cidr, "dev", layout.bridge, "src", layout.node_ip])
    _run(["iptables", "-w", "-I", *_guard_rule(layout)])


def teardown_network(layout: Layout) -> None:
    """Remove the guard rule and the bridge (its address and route go with it); missing pieces are fine."""
    while _run(["iptables", "-w", "-D", *_guard_rule(layout)], check=False).returncode == 0:
        pass
    if Path(f"/sys/class/net/{layout.bridge}").exists():
        _run(["ip", "link", "del", layout.bridge])


def hierarchies() -> list[Path]:
    """Mounted cgroup hierarchies (every v1 controller, the named systemd one, and the v2 one if mounted)."""
    return sorted(
        p for p in CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink() and (p / "cgroup.procs").exists()
    )


def _cgroup_dirs(layout: Layout, leaf: str) -> list[Path]:
    return [h / layout.cgroup_name / leaf for h in hierarchies()]


def make_cgroups(layout: Layout) -> None:
    """Make `<cgroup>/node` (daemons and their shims) and `<cgroup>/pods` (the kubelet's root) in every hierarchy."""
    for leaf in ("node", "pods"):
        for folder in _cgroup_dirs(layout, leaf):
            for level in (folder.parent, folder):
                if level.exists():
                    continue
                level.mkdir()
                if (level / "cpuset.cpus").exists():
                    # A new v1 cpuset has no CPUs and no memory nodes; a task cannot join it until it inherits them.
                    for knob in ("cpuset.cpus", "cpuset.mems"):
                        (level / knob).write_text((level.parent / knob).read_text())


def join_node_cgroup(layout: Layout, pid: int) -> None:
    """Move a daemon into `<cgroup>/node` in every hierarchy, so `down` can find all it started."""
    for folder in _cgroup_dirs(layout, "node"):
        (folder / "cgroup.procs").write_text(f"{pid}\n")


def _walk(folder: Path) -> Iterator[Path]:
    if not folder.is_dir():
        return
    for child in folder.iterdir():
        if child.is_dir():
            yield from _walk(child)
    yield folder


def cgroup_pids(layout: Layout) -> set[int]:
    """Every process in the node's cgroups (daemons, shims, containers)."""
    pids: set[int] = set()
    for hierarchy in hierarchies():
        for folder in _walk(hierarchy / layout.cgroup_name):
            try:
                pids |= {int(p) for p in (folder / "cgroup.procs").read_text().split()}
            except OSError:
                continue
    return pids


def kill_cgroups(layout: Layout) -> set[int]:
    """SIGKILL everything in the node's cgroups until none is left; returns the pids that survived."""
    deadline = time.monotonic() + KILL_PATIENCE
    while (pids := cgroup_pids(layout)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        time.sleep(0.1)
    return cgroup_pids(layout)


def remove_cgroups(layout: Layout) -> list[Path]:
    """Remove the node's cgroups, deepest first (the kubelet's own ones included); returns those that stayed."""
    left = []
    for hierarchy in hierarchies():
        for folder in _walk(hierarchy / layout.cgroup_name):
            for _ in range(20):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)
            if folder.exists():
                left.append(folder)
    return left


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root` (volumes, container root filesystems, network namespaces)."""
    found = []
    prefix = str(root.resolve())
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return found


def unmount_all(root: Path) -> list[str]:
    """Unmount everything below `root`, deepest first; returns what is still mounted."""
    for _ in range(3):
        points = sorted(mounts_under(root), key=len, reverse=True)
        if not points:
            break
        for point in points:
            if _run(["umount", point], check=False).returncode != 0:
                _run(["umount", "-l", point], check=False)
    return mounts_under(root)


def remove_host_leftovers(layout: Layout) -> None:
    """The few files the kubelet and libcni write at fixed host paths, when they belong to this node."""
    pod_logs = str(node.paths(layout)["pod_logs"])
    if LEGACY_LOG_LINKS.is_dir():
        for link in LEGACY_LOG_LINKS.iterdir():
            if link.is_symlink() and os.readlink(link).startswith(pod_logs):
                link.unlink()
    network = node.cni_conflist(layout)["name"]
    results = CNI_CACHE / "results"
    if results.is_dir():
        for entry in results.glob(f"{network}-*"):
            sandbox = entry.name.removeprefix(f"{network}-").rsplit("-", 1)[0]
            (results / f"cni-loopback-{sandbox}-lo").unlink(missing_ok=True)
            entry.unlink()
    if SHIM_SOCKETS.is_dir():
        for socket_file in SHIM_SOCKETS.iterdir():
            if not _answers(socket_file):
                socket_file.unlink(missing_ok=True)
    missing = _missing_file(layout)
    if missing.exists():
        for folder in json.loads(missing.read_text()):
            with contextlib.suppress(OSError):
                Path(folder).rmdir()
        missing.unlink()


def _answers(path: Path) -> bool:
    # A shim whose socket still accepts connections belongs to a live containerd (another cluster's, the host's).
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


KUBE_TABLES = ("filter", "nat", "mangle")


def remove_kube_chains() -> None:
    """Delete the kubelet's own chains (KUBE-FIREWALL, canaries, hint) that `kube-proxy --cleanup` leaves.

    First the jumps into them from the built-in chains, then the chains.
    """
    for tool in ("iptables", "ip6tables"):
        for table in KUBE_TABLES:
            rules = _run([tool, "-w", "-t", table, "-S"], check=False).stdout.splitlines()
            for rule in rules:
                words = rule.split()
                if words[:1] == ["-A"] and "KUBE-" not in words[1] and "KUBE-" in rule:
                    _run([tool, "-w", "-t", table, "-D", *words[1:]], check=False)
            chains = [r.split()[1] for r in rules if r.startswith("-N KUBE-")]
            for chain in chains:
                _run([tool, "-w", "-t", table, "-F", chain], check=False)
            for chain in chains:
                _run([tool, "-w", "-t", table, "-X", chain], check=False)


def kube_rules() -> list[str]:
    """The iptables and ip6tables lines that kube-proxy made (chains and rules named KUBE-)."""
    lines = []
    for tool in ("iptables-save", "ip6tables-save"):
        done = _run([tool], check=False)
        lines += [line for line in done.stdout.splitlines() if "KUBE-" in line]
    return lines


@dataclass(frozen=True)
class Leftovers:
    """What a real node left on the host after `down`; all empty means the host is as it was."""

    processes: set[int]
    mounts: list[str]
    cgroups: list[Path]
    interface: bool
    rules: list[str]
    sysctls: dict[str, str]
    """Kernel settings that still differ from before the first `up`."""
    seconds: dict[str, float] = field(default_factory=dict, compare=False)
    """Seconds from the start of the teardown until each step was done (not a leftover)."""

    def __bool__(self) -> bool:
        return bool(self.processes or self.mounts or self.cgroups or self.interface or self.rules or self.sysctls)


def teardown(layout: Layout, *, proxy_cleanup: list[str]) -> Leftovers:
    """Remove the node from the host: kill its cgroups, unmount, drop rules, bridge and cgroups, restore sysctls."""
    seconds: dict[str, float] = {}
    started = time.monotonic()

    def lap(step: str) -> None:
        seconds[step] = round(time.monotonic() - started, 2)

    survivors = kill_cgroups(layout)
    lap("processes killed")
    mounts = unmount_all(layout.node_root)
    lap("unmounted")
    if Path(proxy_cleanup[0]).exists():
        _run(proxy_cleanup, check=False)
    remove_kube_chains()
    lap("rules removed")
    teardown_network(layout)
    remove_host_leftovers(layout)
    cgroups = remove_cgroups(layout)
    sysctls = restore_sysctls(layout)
    lap("host restored")
    return Leftovers(
        seconds=seconds,
        processes=survivors,
        mounts=mounts,
        cgroups=cgroups,
        interface=Path(f"/sys/class/net/{layout.bridge}").exists(),
        rules=kube_rules(),
        sysctls=sysctls,
    )
