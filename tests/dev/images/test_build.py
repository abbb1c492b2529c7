"""The images built for real (cached across sessions), checked layer by layer, run, and imported into containerd."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentry_dev.cluster import hostnode
from agentry_dev.cluster.build import ensure_node_built
from agentry_dev.images.build import Planned, Progress, ensure_images, layout

pytestmark = [pytest.mark.images, pytest.mark.slow]

#: Paths a RUN step saw through a mount and no layer may contain: pip configuration, pip itself, the host's home.
FORBIDDEN = ("etc/pip.conf", "etc/xdg/pip", "root/.config", "usr/lib/python3/dist-packages/pip")
USERS = {"runtime": "10001:10001", "operator": "65532:65532", "pause": "65535:65535"}
ENTRYPOINTS = {"runtime": ["agentry-runtime"], "operator": ["agentry-operator"], "pause": ["/pause"]}


@pytest.fixture(scope="session")
def images() -> dict[str, Planned]:
    """Every image, built once per machine and content (the first run takes minutes)."""
    return {item.name: item for item in ensure_images()}


def archive_layers(archive: Path) -> Iterator[tarfile.TarFile]:
    with tarfile.open(archive) as bundle:
        (manifest,) = json.loads(bundle.extractfile("manifest.json").read())  # type: ignore[union-attr]
        for name in manifest["Layers"]:
            with tarfile.open(fileobj=bundle.extractfile(name)) as layer:
                yield layer


def image_config(archive: Path) -> dict[str, object]:
    with tarfile.open(archive) as bundle:
        (manifest,) = json.loads(bundle.extractfile("manifest.json").read())  # type: ignore[union-attr]
        config: dict[str, object] = json.loads(bundle.extractfile(manifest["Config"]).read())["config"]  # type: ignore[union-attr]
        return config


@pytest.mark.parametrize("name", ["runtime", "operator", "pause"])
def test_config_runs_as_the_unprivileged_user_with_its_entrypoint(images: dict[str, Planned], name: str) -> None:
    config = image_config(images[name].archive)
    assert config["User"] == USERS[name]
    assert config["Entrypoint"] == ENTRYPOINTS[name]
    env = " ".join(config.get("Env") or [])  # type: ignore[arg-type]
    assert "PIP_" not in env.replace("PIP_DISABLE_PIP_VERSION_CHECK", "").replace("PIP_NO_CACHE_DIR", "")


@pytest.mark.parametrize("name", ["base", "runtime", "operator"])
def test_no_layer_holds_what_the_build_mounted(images: dict[str, Planned], name: str) -> None:
    bundles = []
    for layer in archive_layers(images[name].archive):
        for member in layer.getmembers():
            path = member.name.removeprefix("./")
            assert not path.startswith(FORBIDDEN), f"{path} is in a layer of {name}"
            assert not path.startswith("dev/") or member.isdir(), f"device node {path} in {name}"
            if path == "etc/ssl/certs/ca-certificates.crt":
                bundles.append(path)
    # Debian's bundle, in the base layer only: the host's, mounted over it for RUN steps, was never committed.
    assert len(bundles) == 1


def run_in(
    images: dict[str, Planned], name: str, *argv: str, user: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command in a container of the image with runc, as the image's user, on a read-only root."""
    storage = layout().storage
    container = subprocess.run(
        ["buildah", *storage, "from", "--quiet", "--pull=never", images[name].image.ref],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout.strip()  # fmt: skip
    try:
        command = ["buildah", *storage, "run", "--runtime", "runc", "--network", "none"]
        command += ["--user", user or USERS[name], container, "--", *argv]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    finally:
        subprocess.run(["buildah", *storage, "rm", container], capture_output=True, check=False, timeout=120)


def test_the_runtime_starts_in_its_image(images: dict[str, Planned]) -> None:
    done = run_in(images, "runtime", "agentry-runtime", "--help")
    assert done.returncode == 0, done.stderr
    assert "--config" in done.stdout


def test_the_operator_imports_in_its_image(images: dict[str, Planned]) -> None:
    done = run_in(images, "operator", "python", "-c", "import agent_operator.main, kopf; print('ok')")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize("name", ["runtime", "operator"])
def test_no_pip_and_no_foreign_package_in_the_image(images: dict[str, Planned], name: str) -> None:
    other = "agent_operator" if name == "runtime" else "agent_runtime"
    probe = f"import importlib.util as u; print([m for m in ('pip', '{other}', 'pytest') if u.find_spec(m)])"
    done = run_in(images, name, "python", "-c", probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    which = run_in(images, name, "sh", "-c", "command -v pip pip3 || true")
    assert which.stdout.strip() == ""


def test_the_pause_image_is_one_static_binary(images: dict[str, Planned]) -> None:
    files = [m.name for layer in archive_layers(images["pause"].archive) for m in layer.getmembers() if m.isfile()]
    assert [name.removeprefix("./") for name in files] == ["pause"]


def test_a_second_run_rebuilds_nothing(images: dict[str, Planned], capsys: pytest.CaptureFixture[str]) -> None:
    stamps = {name: item.archive.stat().st_mtime_ns for name, item in images.items()}
    again = {item.name: item for item in ensure_images(progress=Progress())}
    assert {name: item.image for name, item in again.items()} == {name: item.image for name, item in images.items()}
    assert {name: item.archive.stat().st_mtime_ns for name, item in again.items()} == stamps
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4 and all(line.endswith(": cached") for line in lines), lines


@pytest.fixture
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A containerd of the test's own (root, state, socket in a temp folder; no CRI), stopped by PID.

    containerd creates `/run/containerd` (its shim socket folder) whatever its state folder; it goes again if it
    was not there before.
    """
    created = [p for p in (hostnode.SHIM_SOCKETS, hostnode.SHIM_SOCKETS.parent) if not p.exists()]
    folder = Path(tmp_path_factory.mktemp("ctrd"))
    socket = folder / "c.sock"
    config = folder / "config.toml"
    config.write_text(
        f'version = 2\nroot = "{folder}/root"\nstate = "{folder}/state"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{socket}"\n[ttrpc]\n  address = "{socket}.ttrpc"\n'
        f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{folder}/opt"\n'
    )
    with (folder / "containerd.log").open("wb") as log:
        process = subprocess.Popen(
            [str(ensure_node_built() / "containerd"), "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while not socket.exists():
            assert process.poll() is None and time.monotonic() < deadline, (folder / "containerd.log").read_text()
            time.sleep(0.1)
        yield str(socket)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, 9)
            process.wait(timeout=20)
        for path in created:
            with contextlib.suppress(OSError):
                path.rmdir()


def test_import_into_containerd_names_every_runnable_image_and_skips_it_the_second_time(
    images: dict[str, Planned], containerd: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ensure_images(import_to=containerd, progress=Progress())
    listed = subprocess.run(
        [str(ensure_node_built() / "ctr"), "--address", containerd, "-n", "k8s.io", "images", "ls", "-q"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split()  # fmt: skip
    runnable = [item.image.ref for name, item in images.items() if name != "base"]
    assert sorted(runnable) == sorted(listed), "the base is a build parent only; the node never runs it"
    capsys.readouterr()
    ensure_images(import_to=containerd, progress=Progress())
    assert capsys.readouterr().err.count("already in containerd") == 3
