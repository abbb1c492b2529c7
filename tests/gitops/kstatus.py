"""kstatus itself (the Go library Flux uses), built once per machine from `kstatus/`, and run on objects."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.gotools import module_tool

SOURCE = Path(__file__).parent / "kstatus"
KSTATUS = module_tool(name="kstatus", source=SOURCE, files=("go.mod", "go.sum", "main.go"))
"""The helper, built with the committed go.sum; keyed by its sources, so an edit or a version bump rebuilds it."""

#: kstatus's word for each Argo CD health status: the two tools agree when these match.
ARGO_HEALTH = {"Current": "Healthy", "InProgress": "Progressing", "Failed": "Degraded", "Terminating": "Progressing"}


@dataclass(frozen=True)
class Verdict:
    """What kstatus computed for one object."""

    status: str
    message: str


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
