#!/usr/bin/env python3
"""Before a release builds anything: the tag, the project, the chart and the chart's default images must agree."""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CHART = Path("helm/agentry/Chart.yaml")
VALUES = Path("helm/agentry/values.yaml")
REGISTRY = "ghcr.io"
"""Where the workflow pushes: `ghcr.io/<owner>` is the only namespace its GITHUB_TOKEN may write to."""
IMAGES = {"image": "operator", "runtimeImage": "agent-runtime"}
"""values.yaml key of each default image, and the name the release pushes it under."""
SEMVER = re.compile(r"^v(?P<version>(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?)$")
"""A release tag: `v` and a SemVer 2 version (Helm takes nothing else as a chart version), without `+build`
metadata, which an OCI tag cannot carry."""


class ReleaseMismatch(ValueError):
    """The tag and the repository disagree; the message names every value that differs."""


@dataclass(frozen=True)
class Release:
    """What one tag publishes, for the workflow's later jobs (printed as `key=value` lines)."""

    version: str
    operator_image: str
    runtime_image: str
    charts: str

    def outputs(self) -> str:
        """The lines a step appends to `$GITHUB_OUTPUT`."""
        return (
            f"version={self.version}\noperator-image={self.operator_image}\n"
            f"runtime-image={self.runtime_image}\ncharts={self.charts}\n"
        )


def yaml_scalar(text: str, path: Sequence[str], *, where: str) -> str:
    """The value at `path` (one or two block-style keys) in a YAML file whose shape this repository controls.

    Standard library only, so the release needs nothing installed before its first check; a key it cannot find
    is an error naming the file and the key, never a silent default.
    """
    parent, key = (None, path[0]) if len(path) == 1 else (path[0], path[1])
    inside = parent is None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        top_level = not line.startswith((" ", "\t"))
        if parent is not None and top_level:
            inside = line.rstrip() == f"{parent}:"
            continue
        match = re.match(rf"^\s*{re.escape(key)}:\s*(.*?)\s*(#.*)?$", line)
        if inside and match and top_level == (parent is None):
            return match.group(1).strip("\"'")
    raise ReleaseMismatch(f"{where}: no `{'.'.join(path)}` found")


def read_release(*, root: Path, tag: str, owner: str) -> Release:
    """Every check at once, so one failed run lists every value to fix."""
    match = SEMVER.match(tag)
    if match is None:
        raise ReleaseMismatch(f"tag {tag!r} is not `v` and MAJOR.MINOR.PATCH[-prerelease] (v1.2.3, v1.2.3-rc.1)")
    version = match.group("version")
    namespace = f"{REGISTRY}/{owner.lower()}"
    chart, values = (root / CHART).read_text(), (root / VALUES).read_text()
    found = {
        "pyproject.toml version": tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"],
        f"{CHART} version": yaml_scalar(chart, ["version"], where=str(CHART)),
        f"{CHART} appVersion": yaml_scalar(chart, ["appVersion"], where=str(CHART)),
    }
    problems = [f"tag {tag} says {version} but {name} is {value}" for name, value in found.items() if value != version]
    images = {key: yaml_scalar(values, [key, "repository"], where=str(VALUES)) for key in IMAGES}
    problems += [
        f"{VALUES} {key}.repository is {images[key]} but the release pushes {namespace}/{name}"
        for key, name in IMAGES.items()
        if images[key] != f"{namespace}/{name}"
    ]
    if problems:
        raise ReleaseMismatch("release check failed:\n  " + "\n  ".join(problems))
    return Release(version, images["image"], images["runtimeImage"], f"oci://{namespace}/charts")


def main(argv: Sequence[str] | None = None) -> int:
    """Print the release's outputs, or say on stderr what disagrees and exit 1."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tag", required=True, help="the pushed tag, e.g. v0.1.0 ($GITHUB_REF_NAME)")
    parser.add_argument("--owner", required=True, help="the GitHub owner ($GITHUB_REPOSITORY_OWNER)")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args(argv)
    try:
        release = read_release(root=args.root, tag=args.tag, owner=args.owner)
    except ReleaseMismatch as error:
        print(error, file=sys.stderr)
        return 1
    sys.stdout.write(release.outputs())
    return 0


if __name__ == "__main__":
    sys.exit(main())
