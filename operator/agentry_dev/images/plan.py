"""What each image is made of and its content key: pure functions of file digests, build args and the base's key."""

from __future__ import annotations

import ast
import hashlib
import json
import platform
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

REGISTRY = "localhost/agentry"
"""No registry is involved: `localhost/` names an image that exists only in local storage and is never pulled."""
KEY_LENGTH = 16
"""Hex digits of the SHA-256 kept in a tag: 64 bits, ample to tell apart the versions of one image on a machine."""
DEBIAN_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64"}
"""Debian's names for the machines the images are built on (the base is built for this machine only)."""


@dataclass(frozen=True)
class BaseRecipe:
    """The Debian Python base image (mmdebstrap); every field is part of its key, so any change rebuilds it.

    The mirror's content is not in the key: a Debian point release reaches the base when the recipe changes
    or the cache folder is emptied, as with any pinned-by-name base image.
    """

    suite: str = "bookworm"
    """Debian 12, whose python3 is 3.11, the version the lock files are compiled for."""
    architecture: str = DEBIAN_ARCHITECTURES.get(platform.machine(), platform.machine())
    sources: tuple[str, ...] = (
        "deb http://deb.debian.org/debian bookworm main",
        "deb http://deb.debian.org/debian bookworm-updates main",
        "deb http://deb.debian.org/debian-security bookworm-security main",
    )
    """The main archive plus stable updates and security fixes."""
    variant: str = "essential"
    """Only the Essential set, which maintainer scripts assume, plus `packages`: no apt, no init."""
    packages: tuple[str, ...] = ("python3", "python3-venv", "python-is-python3", "passwd", "ca-certificates")
    """python3-venv for the Dockerfiles' `python -m venv`; python-is-python3 because they call `python`; passwd for
    `useradd`; ca-certificates for HTTPS from the runtime (model providers, external APIs)."""
    path_excludes: tuple[str, ...] = (
        "/usr/share/doc/*",
        "/usr/share/man/*",
        "/usr/share/info/*",
        "/usr/share/locale/*",
        "/usr/share/lintian/*",
        "/usr/lib/*/gconv/*",
    )
    """Never unpacked (dpkg filters, so dpkg's database agrees). gconv is glibc's iconv modules: 8 MB that Python,
    which has its own codecs, never loads."""
    path_includes: tuple[str, ...] = ("/usr/share/doc/*/copyright", "/usr/lib/*/gconv/gconv-modules*")
    """Kept despite the excludes: the licences, and iconv's module table."""
    purge: tuple[str, ...] = ("perl-base",)
    """Needed only by debconf in maintainer scripts; nothing installs packages into these images (no apt)."""

    def dpkg_options(self) -> list[str]:
        """The dpkg filter lines, in the order dpkg applies them (an include after the excludes wins)."""
        return [f"path-exclude={p}" for p in self.path_excludes] + [f"path-include={p}" for p in self.path_includes]


PAUSE_VERSION = "3.10.1"
"""The pause release whose `pause.c` is vendored next to this module (Kubernetes 1.35's build/pause)."""
PAUSE_CFLAGS = ("-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{PAUSE_VERSION}-agentry")
"""Kubernetes' own flags (build/pause/Makefile): static, so the image needs no libc."""


@dataclass(frozen=True)
class DockerfileImage:
    """An image built with `buildah bud` from one of the repository's Dockerfiles (context: the repository root)."""

    name: str
    repository: str
    dockerfile: str
    """Path from the repository root; its BuildKit ignore file is `<dockerfile>.dockerignore`."""
    ignore: str | None = None
    """The ignore file when it is not `<dockerfile>.dockerignore` (a user's project has its `.dockerignore`)."""

    @property
    def ignorefile(self) -> str:
        """BuildKit's per-Dockerfile ignore file, handed to buildah explicitly (1.28 does not look for it)."""
        return self.ignore or f"{self.dockerfile}.dockerignore"


BASE_REPOSITORY = f"{REGISTRY}/python-base"
PAUSE_REPOSITORY = f"{REGISTRY}/pause"
DOCKERFILE_IMAGES = (
    DockerfileImage("runtime", f"{REGISTRY}/agent-runtime", "agent_image/Dockerfile"),
    DockerfileImage("operator", f"{REGISTRY}/operator", "operator/Dockerfile"),
)
IMAGE_NAMES = ("base", "pause", *(image.name for image in DOCKERFILE_IMAGES))
"""Build order: the base first (the Dockerfile images start from it); pause has no parent."""


@dataclass(frozen=True)
class ImageRef:
    """Where a built image is found: in buildah's storage, its archive, and containerd once imported."""

    repository: str
    tag: str

    @property
    def ref(self) -> str:
        """`repository:tag`, as `FROM`, `ctr` and a pod's `image:` take it."""
        return f"{self.repository}:{self.tag}"


def digest_key(parts: Mapping[str, object]) -> str:
    """A short hex key of JSON-serialisable inputs; key order does not matter, every value does."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]


def base_key(recipe: BaseRecipe) -> str:
    """The base image's key: its whole recipe."""
    return digest_key({"image": "python-base", "recipe": asdict(recipe)})


def pause_key(*, source_sha256: str, cflags: Iterable[str] = PAUSE_CFLAGS) -> str:
    """The pause image's key: the C source and the compiler flags."""
    return digest_key({"image": "pause", "source": source_sha256, "cflags": list(cflags)})


def dockerfile_key(*, name: str, files: Mapping[str, str], build_args: Mapping[str, str], base: str) -> str:
    """A Dockerfile image's key: what its build reads, its build args and its base image's key.

    `files` holds the digest of every file the build reads: the Dockerfile, its ignore file and each file its COPY
    lines take from the context (after the ignore file's filter).
    """
    return digest_key({"image": name, "files": dict(files), "build_args": dict(build_args), "base": base})


def project_image(name: str) -> DockerfileImage:
    """A user's agent project: its `Dockerfile` and `.dockerignore` at the top of its own folder (the context)."""
    return DockerfileImage(name, f"{REGISTRY}/{name}", "Dockerfile", ignore=".dockerignore")


def project_key(*, name: str, files: Mapping[str, str], runtime: ImageRef) -> str:
    """The key of a user's agent image: what its build reads and the runtime image it starts FROM."""
    return dockerfile_key(name=name, files=files, build_args={PROJECT_BASE_ARG: runtime.ref}, base=runtime.tag)


PROJECT_BASE_ARG = "RUNTIME_IMAGE"
"""The build arg a user's Dockerfile names its runtime image with (`ARG RUNTIME_IMAGE`, `FROM ${RUNTIME_IMAGE}`)."""


def _logical_lines(text: str) -> list[str]:
    """Dockerfile instructions with continuation lines joined and comment lines dropped."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not current):
            continue
        current = f"{current} {line.removesuffix(chr(92))}".strip()
        if not line.endswith("\\"):
            lines.append(current)
            current = ""
    return lines


def copy_sources(dockerfile: str) -> list[str]:
    """The context paths a Dockerfile's COPY and ADD lines read (lines copying from a stage read no context)."""
    sources: list[str] = []
    for line in _logical_lines(dockerfile):
        keyword, _, rest = line.partition(" ")
        if keyword.upper() not in ("COPY", "ADD"):
            continue
        words = rest.split()
        if any(word.startswith("--from") for word in words):
            continue
        paths = [word for word in words if not word.startswith("--")]
        sources += [path.rstrip("/") or "." for path in paths[:-1]]
    return sources


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex on slash-separated paths: `**` any depth, `*` and `?` within a name."""
    out = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out, index = out + "(?:.*/)?", index + 3
        elif pattern.startswith("**", index):
            out, index = out + ".*", index + 2
        elif pattern[index] == "*":
            out, index = out + "[^/]*", index + 1
        elif pattern[index] == "?":
            out, index = out + "[^/]", index + 1
        elif pattern[index] == "[":
            end = pattern.index("]", index)
            out, index = out + pattern[index : end + 1], end + 1
        else:
            out, index = out + re.escape(pattern[index]), index + 1
    return re.compile(out)


def ignore_rules(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """A .dockerignore file as (is an exception `!`, pattern) rules in file order."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((negated, _pattern_regex(line.removeprefix("!").strip().strip("/"))))
    return rules


def in_context(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether BuildKit sends `path` to the build: the last rule matching it or a parent folder of it decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: count + 1]) for count in range(len(parts))]
    included = True
    for negated, pattern in rules:
        if any(pattern.fullmatch(prefix) for prefix in prefixes):
            included = negated
    return included


PIP_PASSED_THROUGH = ("index-url", "extra-index-url", "trusted-host", "timeout", "retries", "proxy")
"""Host pip settings a build needs to reach the same index; paths on the host (find-links, cert) are not among
them: the CA bundle is mounted at the path Debian's pip reads."""


def parse_pip_config(listing: str) -> dict[str, str]:
    """`pip config list` output (`scope.key='value'` lines, `:env:` for PIP_* variables) as {key: value}."""
    settings: dict[str, str] = {}
    for line in listing.splitlines():
        name, sep, value = line.partition("=")
        if not sep or "." not in name:
            continue
        key = name.rsplit(".", 1)[1]
        key = "timeout" if key == "default-timeout" else key  # PIP_DEFAULT_TIMEOUT sets the `timeout` option
        try:
            settings[key] = str(ast.literal_eval(value))
        except (ValueError, SyntaxError):
            settings[key] = value
    return settings


def build_pip_conf(host: Mapping[str, str]) -> str:
    """The pip.conf RUN steps see (mounted, never in a layer).

    The Dockerfiles install the build backend into the build stage's system Python, which Debian marks as
    externally managed; that stage is thrown away, so pip is told to go ahead.
    """
    lines = ["[global]", "break-system-packages = true", "disable-pip-version-check = true"]
    lines += [f"{key} = {host[key]}" for key in PIP_PASSED_THROUGH if key in host]
    return "\n".join(lines) + "\n"


def helm_set_args(refs: Mapping[str, ImageRef]) -> list[str]:
    """`helm install` arguments that make the chart run the locally built operator and runtime images.

    pullPolicy Never: the images exist only in the node's containerd; a pull could only fail.
    """
    operator, runtime = refs["operator"], refs["runtime"]
    values = {
        "image.repository": operator.repository,
        "image.tag": operator.tag,
        "image.pullPolicy": "Never",
        "runtimeImage.repository": runtime.repository,
        "runtimeImage.tag": runtime.tag,
    }
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]
