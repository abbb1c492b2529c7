"""`agentry dev cluster build|up|down|status|kubeconfig`: the local control plane from the command line."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TypeAlias

from agentry_dev.cluster.build import ensure_node_built
from agentry_dev.cluster.cluster import Cluster, ClusterError
from agentry_dev.cluster.network import pod_cidr

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def dev_subparsers(subparsers: Subparsers) -> Subparsers:
    """The subcommands of `agentry dev`, created on first use so other modules can add `dev up` and the like."""
    existing = subparsers.choices.get("dev")
    if existing is None:
        existing = subparsers.add_parser("dev", help="local development environment")
    for action in existing._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return existing.add_subparsers(dest="dev_command", required=True, metavar="DEV_COMMAND")


def register(subparsers: Subparsers) -> Subparsers:
    """Add `dev cluster ...`; returns the `dev` subparsers for further `dev` subcommands."""
    dev = dev_subparsers(subparsers)
    cluster = dev.add_parser("cluster", help="a local Kubernetes cluster (etcd, apiserver, KWOK, a real node)")
    leaves = cluster.add_subparsers(dest="cluster_command", required=True, metavar="ACTION")
    for name, func, help_text in (
        ("build", _build, "build or reuse the binaries, the real node's too (cached per version outside the clone)"),
        ("up", _up, "start the named cluster and wait until it serves"),
        ("down", _down, "stop the named cluster; no process or port stays behind"),
        ("status", _status, "show the components of the named cluster"),
        ("kubeconfig", _kubeconfig, "print the path of the cluster's admin kubeconfig"),
    ):
        leaf = leaves.add_parser(name, help=help_text)
        if name != "build":
            leaf.add_argument("--name", default="agentry", help="cluster name (default: %(default)s)")
        if name == "up":
            leaf.add_argument(
                "--real-node", action="store_true", help="also run a real node: containerd, kubelet and kube-proxy"
            )
        if name == "down":
            leaf.add_argument("--purge", action="store_true", help="also delete the cluster's folder (logs, PKI)")
        leaf.set_defaults(func=func)
    return dev


def _build(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        folder = ensure_node_built()
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{folder} ({time.monotonic() - started:.2f} s)")
    return 0


def _up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        cluster = Cluster.up(args.name, real_node=args.real_node)
    except (ClusterError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in cluster.timings.items()) or "already running"
    print(f"cluster {cluster.name} serves at {cluster.server} ({timings}; total {time.monotonic() - started:.1f} s)")
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    print(f"export PATH={cluster.bin_dir}:$PATH")
    return 0


def _down(args: argparse.Namespace) -> int:
    cluster = Cluster.find(args.name)
    if cluster is None:
        print(f"cluster {args.name} is not running")
        return 0
    try:
        cluster.down(purge=args.purge)
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"cluster {args.name} stopped")
    return 0


def _status(args: argparse.Namespace) -> int:
    cluster = Cluster.find(args.name)
    if cluster is None:
        print(f"cluster {args.name} is not running")
        return 3
    alive = cluster.status()
    layout = cluster.layout
    print(f"cluster {cluster.name}: {cluster.server}, KWOK pod IPs from {pod_cidr(layout.octet)}")
    if layout.real_node:
        print(f"  real node {layout.node_name} at {layout.node_ip} on {layout.bridge}, pods from {layout.node_subnet}")
    print(f"  kubeconfig {cluster.kubeconfig}; logs in {cluster.layout.logs}")
    for component, running in alive.items():
        print(f"  {component:<24} pid {cluster.pids[component]:<8} {'running' if running else 'STOPPED'}")
    return 0 if alive and all(alive.values()) else 1


def _kubeconfig(args: argparse.Namespace) -> int:
    cluster = Cluster.find(args.name)
    if cluster is None:
        print(f"cluster {args.name} is not running", file=sys.stderr)
        return 3
    print(cluster.kubeconfig)
    return 0
