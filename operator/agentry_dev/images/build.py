"""Build the images with mmdebstrap, gcc and buildah into archives under the cache, and import them with ctr."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import tomllib
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agentry_dev.cluster.build import ensure_node_built
from agentry_dev.cluster.versions import cache_root
from agentry_dev.images import plan
from agentry_dev.images.plan import BaseRecipe, DockerfileImage, ImageRef

REPO = Path(__file__).resolve().parents[3]
"""The checkout this module runs from: the Dockerfiles' build context."""
PAUSE_SOURCE = Path(__file__).with_name("pause.c")
MERGED_USR_HOOKS = Path("/usr/share/mmdebstrap/hooks/merged-usr")
"""Debian 12 wants merged /usr; this hook makes it without the usrmerge package, which would pull in 46 MB of Perl."""
CA_TARGET = "/etc/ssl/certs/ca-certificates.crt"
"""Where Debian's pip (and OpenSSL) read CA certificates; the host's bundle is mounted over it for RUN steps."""
SYSTEM_SITE = "/usr/lib/python3/dist-packages"
"""An empty folder on the base's sys.path: pip is mounted there for RUN steps, so no image ever contains it."""
BUILD_TIMEOUT = 3600.0
"""Seconds one tool may run: a cold base downloads about 40 MB of Debian packages; a stuck mirror must not hang."""
STEP_LINE = re.compile(r"STEP \d+/\d+: |^I: (downloading|installing|running|creating|extracting|cleaning)")
"""Lines of buildah's and mmdebstrap's output echoed as progress; the rest goes only to the log."""


class ImageBuildError(RuntimeError):
    """A tool failed; the message names it and ends with the tail of its log."""


@dataclass(frozen=True)
class Layout:
    """Every file of the image builds, under `<cache>/images`; buildah's storage too, apart from the system's."""

    root: Path

    @property
    def archives(self) -> Path:
        """One docker-archive per image and key: what `ctr images import` reads."""
        return self.root / "archives"

    @property
    def logs(self) -> Path:
        """One log per image and key, with the full output of the tools."""
        return self.root / "logs"

    @property
    def debs(self) -> Path:
        """Downloaded Debian packages, kept so that a new base does not fetch them again."""
        return self.root / "debs"

    @property
    def work(self) -> Path:
        """Scratch space of a build (the base's root file system, the pause binary); emptied after each build."""
        return self.root / "work"

    @property
    def storage(self) -> list[str]:
        """Global options of buildah: its own image store, so nothing here touches the system's images."""
        return ["--root", str(self.root / "storage"), "--runroot", str(self.root / "run")]

    def pip_site(self, base_key: str) -> Path:
        """The pip unpacked from the base's own wheel (the version Debian ships), mounted for RUN steps only."""
        return self.root / "build-pip" / base_key

    def archive(self, name: str, image: ImageRef) -> Path:
        """The archive of one image version."""
        return self.archives / f"{name}-{image.tag}.tar"


def layout(root: Path | None = None) -> Layout:
    """The image cache under `root` (default: the control plane's cache root, outside any clone)."""
    return Layout((root or cache_root()) / "images")


@dataclass(frozen=True)
class Planned:
    """One image to have: its name (`base`, `pause`, `runtime`, `operator`), reference and archive."""

    name: str
    image: ImageRef
    archive: Path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def context_digests(image: DockerfileImage, *, repo: Path = REPO) -> dict[str, str]:
    """Digest and executable bit of every file the image's build reads from the context, by relative path."""
    dockerfile = (repo / image.dockerfile).read_text(encoding="utf-8")
    rules = plan.ignore_rules((repo / image.ignorefile).read_text(encoding="utf-8"))
    digests = {name: _sha256(repo / name) for name in (image.dockerfile, image.ignorefile)}
    for source in plan.copy_sources(dockerfile):
        top = repo / source
        candidates = sorted(p for p in top.rglob("*") if p.is_file()) if top.is_dir() else [top]
        for path in candidates:
            relative = path.relative_to(repo).as_posix()
            if plan.in_context(relative, rules):
                mode = "x" if os.access(path, os.X_OK) else "-"
                digests[relative] = f"{_sha256(path)}{mode}"
    return digests


def project_version(repo: Path = REPO) -> str:
    """The version the images are labelled with: pyproject.toml's."""
    return str(tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"])


def build_args(*, base: ImageRef, repo: Path = REPO) -> dict[str, str]:
    """The Dockerfiles' build args: the local base instead of python:slim, and the version label."""
    return {"PYTHON_IMAGE": base.ref, "VERSION": project_version(repo)}


def make_plan(*, cache: Layout, repo: Path = REPO, recipe: BaseRecipe | None = None) -> list[Planned]:
    """Every image in build order, each tagged with its content key (reads the files; decides nothing else)."""
    base = ImageRef(plan.BASE_REPOSITORY, plan.base_key(recipe or BaseRecipe()))
    pause = ImageRef(plan.PAUSE_REPOSITORY, plan.pause_key(source_sha256=_sha256(PAUSE_SOURCE)))
    planned = [
        Planned("base", base, cache.archive("base", base)),
        Planned("pause", pause, cache.archive("pause", pause)),
    ]
    args = build_args(base=base, repo=repo)
    for image in plan.DOCKERFILE_IMAGES:
        key = plan.dockerfile_key(
            name=image.name, files=context_digests(image, repo=repo), build_args=args, base=base.tag
        )
        ref = ImageRef(image.repository, key)
        planned.append(Planned(image.name, ref, cache.archive(image.name, ref)))
    return planned


def image_refs(*, root: Path | None = None, repo: Path = REPO) -> dict[str, ImageRef]:
    """The references of this checkout's images (built or not): what `dev up` hands to `helm install`."""
    return {item.name: item.image for item in make_plan(cache=layout(root), repo=repo)}


def image_size(archive: Path) -> int:
    """Bytes of an image's uncompressed layers, read from its docker-archive (what containerd unpacks)."""
    with tarfile.open(archive) as bundle:
        extracted = bundle.extractfile("manifest.json")
        assert extracted is not None
        (manifest,) = json.loads(extracted.read())
        return sum(bundle.getmember(layer).size for layer in manifest["Layers"])


class Progress:
    """One line per step on stderr, with the seconds since the command started."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started = clock()

    def __call__(self, message: str) -> None:
        """Print one progress line."""
        print(f"[{self._clock() - self._started:6.1f}s] {message}", file=sys.stderr, flush=True)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_logged(argv: list[str], *, log: Path, progress: Progress | None = None, cwd: Path | None = None) -> str:
    """Run a tool with its output appended to `log`, step lines echoed; its stdout's last line is returned.

    The tool runs in its own process group, killed whole after BUILD_TIMEOUT.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    last = ""
    with log.open("ab") as out:
        out.write(f"$ {shlex.join(argv)}\n".encode())
        out.flush()
        with subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
        ) as process:
            timer = threading.Timer(BUILD_TIMEOUT, _kill_group, args=(process,))
            timer.start()
            try:
                assert process.stdout is not None
                for raw in process.stdout:
                    out.write(raw)
                    last = raw.decode(errors="replace").strip() or last
                    if progress is not None and STEP_LINE.search(last):
                        progress(f"  {last[:110]}")
            finally:
                timer.cancel()
                code = process.wait()
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise ImageBuildError(f"{argv[0]} {argv[1] if len(argv) > 1 else ''} failed (exit {code}); {log}:\n{tail}")
    return last


@contextmanager
def _locked(path: Path, progress: Progress) -> Iterator[None]:
    # Two builds (two pytest sessions, CI next to a developer's shell) must not write one cache at once.
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"waiting for another image build ({path})")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _assert_unmounted(folder: Path, *, mounts: Path = Path("/proc/self/mounts")) -> None:
    """Refuse to delete a folder with a mount inside (a chroot left mounted would take /dev or /proc with it)."""
    prefix = str(folder.resolve()) + "/"
    points = [line.split()[1] for line in mounts.read_text().splitlines()]
    busy = [point for point in points if point.startswith(prefix)]
    if busy:
        raise ImageBuildError(f"{folder} still has mounts ({', '.join(busy)}); unmount them first")


def remove_tree(folder: Path, *, mounts: Path = Path("/proc/self/mounts")) -> None:
    """Delete a build folder, refusing while anything is mounted inside it (`mounts`: the kernel's mount table)."""
    if folder.exists():
        _assert_unmounted(folder, mounts=mounts)
        shutil.rmtree(folder)


class Builder:
    """Builds missing images of a plan into the cache; holds no state beyond the layout and the progress sink."""

    def __init__(self, *, cache: Layout, progress: Progress, repo: Path = REPO, recipe: BaseRecipe | None = None):
        self.cache, self.progress, self.repo = cache, progress, repo
        self.recipe = recipe or BaseRecipe()

    def buildah(self, *args: str, log: Path, echo: bool = False, cwd: Path | None = None) -> str:
        """Run buildah on the cache's own storage."""
        return run_logged(
            ["buildah", *self.cache.storage, *args], log=log, progress=self.progress if echo else None, cwd=cwd
        )

    def present(self, image: ImageRef) -> bool:
        """Whether buildah's storage holds the image."""
        argv = ["buildah", *self.cache.storage, "inspect", "--type", "image", "--format", "{{.FromImageID}}", image.ref]
        return subprocess.run(argv, capture_output=True, check=False, timeout=120).returncode == 0

    def complete(self, item: Planned) -> bool:
        """Whether the image is built: its archive exists (and, for the base, the pip its builds mount)."""
        done = item.archive.exists()
        return done and (item.name != "base" or self.cache.pip_site(item.image.tag).is_dir())

    def ensure(self, items: list[Planned]) -> None:
        """Build, in order, every image whose archive is missing."""
        for item in items:
            if self.complete(item):
                self.progress(f"{item.name} {item.image.ref}: cached")
                continue
            started = time.monotonic()
            log = self.cache.logs / f"{item.name}-{item.image.tag}.log"
            log.unlink(missing_ok=True)
            self.progress(f"{item.name} {item.image.ref}: building (log {log})")
            if item.name == "base":
                self._base(item, log)
            elif item.name == "pause":
                self._pause(item, log)
            else:
                parent = items[0]
                self._load(parent, log)
                self._dockerfile(item, next(i for i in plan.DOCKERFILE_IMAGES if i.name == item.name), parent, log)
            self._export(item, log)
            size = image_size(item.archive) / 2**20
            self.progress(f"{item.name} {item.image.ref}: built in {time.monotonic() - started:.1f}s, {size:.1f} MiB")

    def _load(self, item: Planned, log: Path) -> None:
        """Put an image back into buildah's storage from its archive (the storage may have been reset)."""
        if not self.present(item.image):
            self.progress(f"loading {item.image.ref} from {item.archive}")
            self.buildah("pull", "--quiet", f"docker-archive:{item.archive}", log=log)

    def _export(self, item: Planned, log: Path) -> None:
        """Write the archive atomically, then drop the archives and tags of this image's older versions."""
        item.archive.parent.mkdir(parents=True, exist_ok=True)
        partial = item.archive.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        self.buildah("push", "--quiet", item.image.ref, f"docker-archive:{partial}:{item.image.ref}", log=log)
        partial.rename(item.archive)
        for old in item.archive.parent.glob(f"{item.name}-*.tar"):
            if old != item.archive:
                old.unlink()
                stale = f"{item.image.repository}:{old.stem.removeprefix(item.name + '-')}"
                subprocess.run(["buildah", *self.cache.storage, "rmi", stale], capture_output=True, check=False)

    def _commit_scratch(
        self, *, rootfs_tar: Path | None, files: dict[str, Path], config: list[str], ref: str, log: Path
    ) -> None:
        """An image from nothing: a root file system tarball and/or single files, then its config."""
        container = self.buildah("from", "--quiet", "scratch", log=log)
        try:
            if rootfs_tar is not None:
                self.buildah("add", "--quiet", container, str(rootfs_tar), "/", log=log)
            for target, source in files.items():
                self.buildah("copy", "--quiet", container, str(source), target, log=log)
            self.buildah("config", *config, container, log=log)
            self.buildah("commit", "--quiet", container, ref, log=log)
        finally:
            subprocess.run(["buildah", *self.cache.storage, "rm", container], capture_output=True, check=False)

    def _base(self, item: Planned, log: Path) -> None:
        work = self.cache.work / f"base-{item.image.tag}"
        remove_tree(work)
        rootfs = work / "rootfs"
        work.mkdir(parents=True)
        self.cache.debs.mkdir(parents=True, exist_ok=True)
        run_logged(mmdebstrap_argv(self.recipe, rootfs=rootfs, debs=self.cache.debs), log=log, progress=self.progress)
        _assert_unmounted(rootfs)
        trim_rootfs(rootfs)
        self._unpack_pip(rootfs, self.cache.pip_site(item.image.tag))
        tarball = work / "rootfs.tar"
        tar = ["tar", "--create", "--file", str(tarball), "--numeric-owner", "--xattrs", "--xattrs-include=*"]
        run_logged([*tar, "--directory", str(rootfs), "."], log=log)
        self.progress(f"  importing the root file system ({tarball.stat().st_size / 2**20:.1f} MiB) into buildah")
        config = [
            "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--env", "LANG=C.UTF-8",
            "--cmd", '["python3"]',
            "--label", "org.opencontainers.image.title=agentry-python-base",
            "--label", f"org.opencontainers.image.description=Debian {self.recipe.suite} with "
            + ", ".join(self.recipe.packages) + " (mmdebstrap)",
        ]  # fmt: skip
        self._commit_scratch(rootfs_tar=tarball, files={}, config=config, ref=item.image.ref, log=log)
        remove_tree(work)

    @staticmethod
    def _unpack_pip(rootfs: Path, target: Path) -> None:
        """Unpack pip for the build stage's system Python, from the base's own wheel (python3-pip-whl)."""
        (wheel,) = sorted((rootfs / "usr/share/python-wheels").glob("pip-*.whl"))[-1:]
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(partial)
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)

    def _pause(self, item: Planned, log: Path) -> None:
        work = self.cache.work / f"pause-{item.image.tag}"
        remove_tree(work)
        work.mkdir(parents=True)
        binary = work / "pause"
        run_logged(["gcc", *plan.PAUSE_CFLAGS, "-o", str(binary), str(PAUSE_SOURCE)], log=log)
        run_logged(["strip", str(binary)], log=log)
        config = [
            "--entrypoint", '["/pause"]',
            "--user", "65535:65535",
            "--label", "org.opencontainers.image.title=agentry-pause",
            "--label", f"org.opencontainers.image.version={plan.PAUSE_VERSION}",
        ]  # fmt: skip
        self._commit_scratch(rootfs_tar=None, files={"/pause": binary}, config=config, ref=item.image.ref, log=log)
        remove_tree(work)

    def _dockerfile(
        self, item: Planned, image: DockerfileImage, base: Planned, log: Path, *, args: dict[str, str] | None = None
    ) -> None:
        """`buildah bud` with the base's pip mounted; `args` replace the build args of Agentry's own images."""
        self.cache.work.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.cache.work, prefix="home-") as home:
            # pip's user config, for RUN steps only: it may hold the host's index settings, so it lives no longer
            # than the build and is readable by root alone.
            config = Path(home) / ".config" / "pip" / "pip.conf"
            config.parent.mkdir(parents=True)
            config.write_text(plan.build_pip_conf(host_pip_settings()))
            config.chmod(0o600)
            argv = bud_argv(
                image,
                repo=self.repo,
                ref=item.image.ref,
                args=args if args is not None else build_args(base=base.image, repo=self.repo),
                mounts=build_mounts(pip_site=self.cache.pip_site(base.image.tag), home=Path(home)),
            )
            self.buildah(*argv, log=log, echo=True, cwd=self.repo)


def mmdebstrap_argv(recipe: BaseRecipe, *, rootfs: Path, debs: Path) -> list[str]:
    """The base's mmdebstrap command: the recipe's packages and filters; downloaded packages kept in `debs`."""
    cache = shlex.quote(str(debs))
    return [
        "mmdebstrap",
        f"--variant={recipe.variant}",
        f"--architectures={recipe.architecture}",
        f"--include={','.join(recipe.packages)}",
        f"--hook-dir={MERGED_USR_HOOKS}",
        *[f"--dpkgopt={option}" for option in recipe.dpkg_options()],
        '--setup-hook=mkdir -p "$1"/var/cache/apt/archives/',
        f"--setup-hook=sync-in {cache} /var/cache/apt/archives/",
        f"--customize-hook=sync-out /var/cache/apt/archives {cache}",
        *[
            f'--customize-hook=chroot "$1" dpkg --purge --force-remove-essential --force-depends {p}'
            for p in recipe.purge
        ],
        recipe.suite,
        str(rootfs),
        *recipe.sources,
    ]


HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def trim_rootfs(rootfs: Path) -> None:
    """What mmdebstrap leaves that an image must not carry: the host's resolv.conf and hostname, device nodes.

    Container runtimes provide /dev, /etc/resolv.conf, /etc/hostname and /etc/hosts; the files stay (empty, or
    the standard localhost lines) so that buildah's mounts over them leave nothing behind in a layer.
    """
    for entry in (rootfs / "dev").iterdir():
        if entry.is_symlink() or not entry.is_dir():
            entry.unlink()
    (rootfs / "etc/resolv.conf").write_text("")
    (rootfs / "etc/hostname").write_text("")
    (rootfs / "etc/hosts").write_text(HOSTS)


def host_pip_settings() -> dict[str, str]:
    """This machine's pip settings (files and PIP_* variables), as the host's own pip reads them."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False, timeout=60
    )
    return plan.parse_pip_config(done.stdout) if done.returncode == 0 else {}


def host_ca_bundle() -> Path | None:
    """The CA bundle the host trusts (a proxy's CA may be in it): pip's `cert`, else OpenSSL's default file."""
    configured = host_pip_settings().get("cert") or ssl.get_default_verify_paths().cafile or CA_TARGET
    path = Path(configured)
    return path if path.is_file() else None


def build_mounts(*, pip_site: Path, home: Path) -> list[str]:
    """`--volume` arguments: seen by RUN steps, never committed (each target exists, empty, in the base)."""
    mounts = [f"{pip_site}:{SYSTEM_SITE}:ro", f"{home}:/root:ro"]
    bundle = host_ca_bundle()
    if bundle is not None:
        mounts.append(f"{bundle}:{CA_TARGET}:ro")
    return mounts


def bud_argv(image: DockerfileImage, *, repo: Path, ref: str, args: dict[str, str], mounts: list[str]) -> list[str]:
    """`buildah bud` of an unchanged Dockerfile from the repository root.

    runc (crun fails on this machine's hybrid cgroups), host networking (no CNI needed to reach PyPI), layer
    caching (a source change reuses the dependency layers) and never a pull: the base is local.
    """
    argv = ["bud", "--runtime", "runc", "--network", "host", "--layers", "--pull=never"]
    argv += ["--ignorefile", str(repo / image.ignorefile), "-f", str(repo / image.dockerfile), "-t", ref]
    argv += [f"--build-arg={key}={value}" for key, value in args.items()]
    argv += [f"--volume={mount}" for mount in mounts]
    return [*argv, str(repo)]


def import_to_containerd(items: list[Planned], *, address: str, progress: Progress, log: Path) -> None:
    """Import the archives into containerd's `k8s.io` namespace (the kubelet's), skipping images it has."""
    # The ctr built with the node's containerd (2.x), whose import speaks that containerd's transfer service.
    ctr = [str(ensure_node_built() / "ctr"), "--address", address, "--namespace", "k8s.io"]
    listed = subprocess.run([*ctr, "images", "ls", "-q"], capture_output=True, text=True, check=False, timeout=120)
    if listed.returncode != 0:
        raise ImageBuildError(f"ctr could not list images at {address}: {listed.stderr.strip()}")
    have = set(listed.stdout.split())
    for item in items:
        if item.image.ref in have:
            progress(f"{item.name} {item.image.ref}: already in containerd")
            continue
        progress(f"{item.name} {item.image.ref}: importing into containerd at {address}")
        run_logged([*ctr, "images", "import", str(item.archive)], log=log)


def ensure_images(
    *, root: Path | None = None, repo: Path = REPO, import_to: str | None = None, progress: Progress | None = None
) -> list[Planned]:
    """Build whatever is missing (under a file lock), then optionally import everything into containerd."""
    cache = layout(root)
    progress = progress or Progress()
    with _locked(cache.root / ".lock", progress):
        items = make_plan(cache=cache, repo=repo)
        Builder(cache=cache, progress=progress, repo=repo).ensure(items)
        if import_to is not None:
            # The base is only the Dockerfiles' parent: no pod runs it, so the node need not hold it.
            runnable = [item for item in items if item.name != "base"]
            import_to_containerd(runnable, address=import_to, progress=progress, log=cache.logs / "ctr-import.log")
    return items


def plan_project(project: Path, *, name: str, runtime: ImageRef, root: Path | None = None) -> Planned:
    """A user's agent image (folder `project`, FROM the runtime), tagged with the key of what its build reads."""
    image = plan.project_image(name)
    key = plan.project_key(name=name, files=context_digests(image, repo=project), runtime=runtime)
    ref = ImageRef(image.repository, key)
    return Planned(name, ref, layout(root).archive(name, ref))


def ensure_project_image(
    project: Path,
    *,
    name: str,
    images: list[Planned],
    root: Path | None = None,
    import_to: str | None = None,
    progress: Progress | None = None,
) -> Planned:
    """Build a user's agent image on the runtime of `images` (from `ensure_images`) unless its archive exists.

    Its Dockerfile starts `FROM ${RUNTIME_IMAGE}`; RUN steps see the base's pip, as the runtime's own build did.
    `import_to` (a containerd socket) imports it into the node, as `ensure_images` does Agentry's own images.
    """
    cache = layout(root)
    progress = progress or Progress()
    base, runtime = (next(item for item in images if item.name == wanted) for wanted in ("base", "runtime"))
    with _locked(cache.root / ".lock", progress):
        item = plan_project(project, name=name, runtime=runtime.image, root=root)
        builder = Builder(cache=cache, progress=progress, repo=project)
        if builder.complete(item):
            progress(f"{item.name} {item.image.ref}: cached")
        else:
            started = time.monotonic()
            log = cache.logs / f"{item.name}-{item.image.tag}.log"
            log.unlink(missing_ok=True)
            progress(f"{item.name} {item.image.ref}: building on {runtime.image.ref} (log {log})")
            builder._load(runtime, log)
            builder._dockerfile(
                item, plan.project_image(name), base, log, args={plan.PROJECT_BASE_ARG: runtime.image.ref}
            )
            builder._export(item, log)
            progress(f"{item.name} {item.image.ref}: built in {time.monotonic() - started:.1f}s")
        if import_to is not None:
            import_to_containerd([item], address=import_to, progress=progress, log=cache.logs / "ctr-import.log")
    return item
