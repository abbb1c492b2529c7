"""Loopback addresses of one cluster: free ports for its components and a pod range of its own."""

from __future__ import annotations

import socket
import zlib
from collections.abc import Iterable
from contextlib import ExitStack

HOST = "127.0.0.1"
"""Every component listens here and nowhere else; this is also the KWOK node's IP."""

FIRST_OCTET, LAST_OCTET = 1, 254
"""Second octets a cluster may take for its pod range `127.<octet>.0.0/16` (127.0/16 holds 127.0.0.1)."""

SERVICE_RANGE_OCTET = 255
"""Services take `127.255.<octet>.0/24`: loopback too, and never inside any cluster's pod range."""


def free_ports(count: int) -> tuple[int, ...]:
    """Ports the kernel reports free on 127.0.0.1, distinct because all sockets stay open until the end."""
    with ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((HOST, 0))
            sockets.append(sock)
        return tuple(sock.getsockname()[1] for sock in sockets)


def is_listening(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def choose_octet(*, name: str, taken: Iterable[int]) -> int:
    """The second octet of a cluster's pod range: stable for a name, and never one a running cluster holds."""
    used = set(taken)
    size = LAST_OCTET - FIRST_OCTET + 1
    start = zlib.crc32(name.encode()) % size
    for step in range(size):
        octet = FIRST_OCTET + (start + step) % size
        if octet not in used:
            return octet
    raise RuntimeError(f"all {size} loopback pod ranges are taken by running clusters")


def pod_cidr(octet: int) -> str:
    """KWOK hands pod IPs from here, so every pod IP is a loopback address a local process can bind."""
    return f"127.{octet}.0.0/16"


def service_cidr(octet: int) -> str:
    """ClusterIPs of one cluster; nothing routes them, and they stay on loopback like everything else."""
    return f"127.{SERVICE_RANGE_OCTET}.{octet}.0/24"


NODE_NET = "10.213"
"""A real node's bridge takes `10.213.<octet>.0/24`: the node is `.1`, its pods the rest. The range exists only on
the bridge the cluster creates, so nothing off this machine is ever addressed."""

NODE_SERVICE_NET = "10.214"
"""ClusterIPs of a cluster with a real node: `10.214.<octet>.0/24`, routed onto the cluster's bridge only, so the
host and every pod reach them (loopback ClusterIPs would be each pod's own loopback)."""


def bridge_name(octet: int) -> str:
    """The Linux bridge of one cluster's real node (at most 15 characters, as interface names must be)."""
    return f"agentry{octet}"


def node_subnet(octet: int) -> str:
    """The bridge's subnet: the node's address and every pod IP of the real node."""
    return f"{NODE_NET}.{octet}.0/24"


def node_ip(octet: int) -> str:
    """The node's address on its bridge: the kubelet's node IP, the API server's address, the pods' gateway."""
    return f"{NODE_NET}.{octet}.1"


def node_service_cidr(octet: int) -> str:
    """ClusterIPs of a cluster with a real node."""
    return f"{NODE_SERVICE_NET}.{octet}.0/24"


def first_service_ip(cidr: str) -> str:
    """The `kubernetes` Service's ClusterIP: the first address of the Service range."""
    network = cidr.split("/", 1)[0].rsplit(".", 1)[0]
    return f"{network}.1"
