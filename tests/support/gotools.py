"""Go helper tools of the tests and `.ci/test`, built once per machine into the cache's `tools/` folder."""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agentry_dev.cluster.build import GO_FALLBACK
from agentry_dev.cluster.versions import cache_root

ACTIONLINT_VERSION = "v1.7.12"
"""The workflow linter `.ci/test` runs; a release the Go module proxy serves."""
JAEGER_VERSION = "v1.75.0"
"""Jaeger v2's all-in-one (an OpenTelemetry Collector with storage and the query API) the tracing tests run."""
PROMTOOL_VERSION = "v0.316.0"
"""Prometheus 3.x's Go module version, whose promtool checks and unit-tests rule files."""


class GoToolBuildError(RuntimeError):
    """`go build` or `go install` of a helper failed; the message has go's output."""


@dataclass(frozen=True)
class GoTool:
    """One executable: a module folder of this repository, `go install pkg@version`, or a package of a module.

    A module folder is built with its go.sum; a downloaded `module@version` is built as the main module.
    """

    name: str
    package: str
    """`.` inside `source`, `module/cmd@version` for `go install`, or `./cmd/...` inside `module`."""
    key: str
    """Part of the cache folder's name (a version, or a digest of the sources), so a bump or an edit rebuilds."""
    source: Path | None = None
    module: str | None = None
    """`module@version`, fetched with `go mod download` and built in its folder, so its own go.mod and go.sum apply:
    `go install pkg@version` refuses a module whose go.mod has replace directives (Jaeger's has one)."""

    def path(self, *, root: Path) -> Path:
        """Where the built binary is cached under `root`."""
        return root / "tools" / f"{self.name}-{self.key}" / self.name


def module_tool(*, name: str, source: Path, files: Sequence[str]) -> GoTool:
    """A helper built from a folder of this repository, keyed by the contents of its `files`."""
    digest = hashlib.sha256(b"\0".join((source / f).read_bytes() for f in files)).hexdigest()[:16]
    return GoTool(name=name, package=".", key=digest, source=source)


ACTIONLINT = GoTool(
    name="actionlint",
    package=f"github.com/rhysd/actionlint/cmd/actionlint@{ACTIONLINT_VERSION}",
    key=ACTIONLINT_VERSION,
)
JAEGER = GoTool(
    name="jaeger",
    package="./cmd/jaeger",
    key=JAEGER_VERSION,
    module=f"github.com/jaegertracing/jaeger@{JAEGER_VERSION}",
)
PROMTOOL = GoTool(
    name="promtool",
    package=f"github.com/prometheus/prometheus/cmd/promtool@{PROMTOOL_VERSION}",
    key=PROMTOOL_VERSION,
)
TOOLS = {"actionlint": ACTIONLINT, "jaeger": JAEGER, "promtool": PROMTOOL}
"""The tools `python -m tests.support.gotools NAME` knows (the kstatus helper is built by its own tests)."""


def go_path() -> str | None:
    """PATH with Go on it (the official tarball's folder is tried too), or None when there is no `go` at all."""
    path = os.environ.get("PATH", "")
    if shutil.which("go", path=path) is None:
        path = f"{path}{os.pathsep}{GO_FALLBACK}"
    return path if shutil.which("go", path=path) else None


def build(tool: GoTool, *, root: Path | None = None) -> Path:
    """The tool's path, built when not cached yet; a warm call only checks that the file exists.

    Two sessions at once take a lock, so only one of them runs go into the folder.
    """
    target = tool.path(root=root or cache_root())
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            _go_build(tool, target)
    return target


def _go_build(tool: GoTool, target: Path) -> None:
    path = go_path()
    if path is None:
        raise GoToolBuildError(f"`go` is not on PATH (nor in {GO_FALLBACK}); {tool.name} is built from Go (>= 1.26)")
    env = {**os.environ, "PATH": path, "GOTOOLCHAIN": "local", "GOFLAGS": "-buildvcs=false -mod=readonly"}
    env["GOWORK"] = "off"
    flags = ["-trimpath", "-ldflags", "-s -w"]
    # Built into a scratch folder next to the target and renamed, so a half-linked binary never looks cached.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as scratch:
        source = tool.source if tool.module is None else _download(tool.module, cwd=Path(scratch), env=env)
        if source is None:
            argv, cwd, env = ["go", "install", *flags, tool.package], Path(scratch), {**env, "GOBIN": scratch}
        else:
            argv, cwd = ["go", "build", *flags, "-o", str(Path(scratch) / tool.name), tool.package], source
        _go(argv, cwd=cwd, env=env, timeout=1800)
        (Path(scratch) / tool.name).rename(target)


def _download(module: str, *, cwd: Path, env: dict[str, str]) -> Path:
    """The read-only folder of `module@version` in Go's module cache, downloaded (checked against the sum database)."""
    done = _go(["go", "mod", "download", "-json", module], cwd=cwd, env=env, timeout=600)
    return Path(json.loads(done.stdout)["Dir"])


def _go(argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        output = (done.stderr or done.stdout)[-3000:]
        raise GoToolBuildError(f"{' '.join(argv)} in {cwd} exited {done.returncode}:\n{output}")
    return done


def main(argv: Sequence[str] | None = None) -> int:
    """Print the path of a tool, building it first (with a line on stderr) when it is not cached."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.gotools", description=main.__doc__)
    parser.add_argument("tool", choices=sorted(TOOLS))
    tool = TOOLS[parser.parse_args(argv).tool]
    if not tool.path(root=cache_root()).exists():
        print(f"building {tool.name} {tool.key} from its Go module (minutes the first time)", file=sys.stderr)
    started = time.monotonic()
    try:
        target = build(tool)
    except GoToolBuildError as error:
        print(error, file=sys.stderr)
        return 1
    if time.monotonic() - started > 1:
        print(f"built {tool.name} in {time.monotonic() - started:.0f} s: {target}", file=sys.stderr)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
