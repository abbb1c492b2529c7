"""kstatus itself (the Go library Flux uses), built once per machine from `kstatus/`, and run on objects."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentry_dev.cluster.build import GO_FALLBACK
from agentry_dev.cluster.versions import cache_root

SOURCE = Path(__file__).parent / "kstatus"
FILES = ("go.mod", "go.sum", "main.go")
#: kstatus's word for each Argo CD health status: the two tools agree when these match.
ARGO_HEALTH = {"Current": "Healthy", "InProgress": "Progressing", "Failed": "Degraded", "Terminating": "Progressing"}


class KstatusBuildError(RuntimeError):
    """`go build` of the helper failed; the message has go's output."""


@dataclass(frozen=True)
class Verdict:
    """What kstatus computed for one object."""

    status: str
    message: str


def binary_path(*, root: Path) -> Path:
    """Where the helper is cached: keyed by its sources, so an edit or a version bump rebuilds it."""
    digest = hashlib.sha256(b"\0".join((SOURCE / name).read_bytes() for name in FILES)).hexdigest()[:16]
    return root / "tools" / f"kstatus-{digest}" / "kstatus"


def build(*, root: Path | None = None) -> Path:
    """The helper's path, built from the Go module proxy with the committed go.sum when not cached yet.

    Two test sessions at once take a lock, so only one of them runs `go build` into the folder.
    """
    target = binary_path(root=root or cache_root())
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            _go_build(target)
    return target


def _go_build(target: Path) -> None:
    path = os.environ.get("PATH", "")
    if shutil.which("go", path=path) is None:
        path = f"{path}{os.pathsep}{GO_FALLBACK}"
    env = {**os.environ, "PATH": path, "GOTOOLCHAIN": "local", "GOFLAGS": "-buildvcs=false -mod=readonly"}
    partial = target.with_name("kstatus.partial")
    argv = ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(partial), "."]
    done = subprocess.run(argv, cwd=SOURCE, env=env, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise KstatusBuildError(f"{' '.join(argv)} in {SOURCE} exited {done.returncode}:\n{done.stderr[-3000:]}")
    partial.rename(target)


@dataclass(frozen=True)
class Kstatus:
    """The built helper: one process per call, any number of objects per process."""

    binary: Path

    def compute(self, objects: Sequence[Mapping[str, Any]]) -> list[Verdict]:
        """What kstatus says of each object, in order."""
        text = "".join(json.dumps(obj) + "\n" for obj in objects)
        done = subprocess.run([str(self.binary)], input=text, capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise AssertionError(f"kstatus exited {done.returncode}: {done.stderr}")
        answers = [json.loads(line) for line in done.stdout.splitlines()]
        return [Verdict(status=a["status"], message=a["message"]) for a in answers]

    def one(self, obj: Mapping[str, Any]) -> Verdict:
        """What kstatus says of one object."""
        return self.compute([obj])[0]
