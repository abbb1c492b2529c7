"""`.ci/release_check.py`: a tag releases only when the project, the chart and its default images agree with it."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "release_check.py"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
FILES = ("pyproject.toml", "helm/agentry/Chart.yaml", "helm/agentry/values.yaml")


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("release_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


release_check = load_script()


def run(*args: str, root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(SCRIPT), "--root", str(root), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the three files the check reads, for a test to change."""
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_the_repository_as_committed_releases_its_own_version() -> None:
    done = run("--tag", f"v{VERSION}", "--owner", "agentry")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [
        f"version={VERSION}",
        "operator-image=ghcr.io/agentry/operator",
        "runtime-image=ghcr.io/agentry/agent-runtime",
        "charts=oci://ghcr.io/agentry/charts",
    ]


def test_an_owner_spelled_with_capitals_is_the_same_lowercase_namespace() -> None:
    assert run("--tag", f"v{VERSION}", "--owner", "Agentry").returncode == 0


def test_a_tag_ahead_of_the_project_names_the_tag_and_each_stale_value() -> None:
    done = run("--tag", "v9.9.9", "--owner", "agentry")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines() == [
        "release check failed:",
        f"  tag v9.9.9 says 9.9.9 but pyproject.toml version is {VERSION}",
        f"  tag v9.9.9 says 9.9.9 but helm/agentry/Chart.yaml version is {VERSION}",
        f"  tag v9.9.9 says 9.9.9 but helm/agentry/Chart.yaml appVersion is {VERSION}",
    ]


@pytest.mark.parametrize(
    ("path", "old", "new", "message"),
    [
        ("pyproject.toml", f'version = "{VERSION}"', 'version = "0.0.9"', "pyproject.toml version is 0.0.9"),
        (
            "helm/agentry/Chart.yaml",
            f"\nversion: {VERSION}",
            "\nversion: 0.0.9",
            "helm/agentry/Chart.yaml version is 0.0.9",
        ),
        (
            "helm/agentry/Chart.yaml",
            f'appVersion: "{VERSION}"',
            'appVersion: "0.0.9"',
            "helm/agentry/Chart.yaml appVersion is 0.0.9",
        ),
    ],
    ids=["pyproject", "chart-version", "chart-app-version"],
)
def test_one_value_behind_the_tag_fails_naming_both(repo: Path, path: str, old: str, new: str, message: str) -> None:
    edit(repo / path, old, new)
    done = run("--tag", f"v{VERSION}", "--owner", "agentry", root=repo)
    assert done.returncode == 1
    assert done.stderr.splitlines()[1:] == [f"  tag v{VERSION} says {VERSION} but {message}"]


def test_a_chart_default_image_elsewhere_than_the_release_pushes_fails(repo: Path) -> None:
    edit(repo / "helm/agentry/values.yaml", "repository: ghcr.io/agentry/agent-runtime", "repository: quay.io/x/rt")
    done = run("--tag", f"v{VERSION}", "--owner", "agentry", root=repo)
    assert done.returncode == 1
    assert done.stderr.splitlines()[1:] == [
        "  helm/agentry/values.yaml runtimeImage.repository is quay.io/x/rt"
        " but the release pushes ghcr.io/agentry/agent-runtime"
    ]


def test_a_fork_releasing_under_its_own_owner_is_told_to_change_the_chart_defaults() -> None:
    done = run("--tag", f"v{VERSION}", "--owner", "acme")
    assert done.returncode == 1
    assert "image.repository is ghcr.io/agentry/operator but the release pushes ghcr.io/acme/operator" in done.stderr


@pytest.mark.parametrize("tag", ["0.1.0", "v0.1", "v01.2.3", "release-1", "v1.2.3+build"])
def test_a_tag_that_is_not_a_semver_version_is_refused_before_anything_else(tag: str) -> None:
    done = run("--tag", tag, "--owner", "agentry")
    assert done.returncode == 1
    assert done.stderr.strip() == f"tag {tag!r} is not `v` and MAJOR.MINOR.PATCH[-prerelease] (v1.2.3, v1.2.3-rc.1)"


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("helm/agentry/Chart.yaml", ("version",)),
        ("helm/agentry/Chart.yaml", ("appVersion",)),
        ("helm/agentry/values.yaml", ("image", "repository")),
        ("helm/agentry/values.yaml", ("runtimeImage", "repository")),
    ],
)
def test_the_stdlib_reader_agrees_with_a_yaml_parser_on_the_real_chart(name: str, path: tuple[str, ...]) -> None:
    text = (ROOT / name).read_text()
    expected: object = yaml.safe_load(text)
    for key in path:
        assert isinstance(expected, dict)
        expected = expected[key]
    assert release_check.yaml_scalar(text, list(path), where=name) == expected


def test_a_key_the_reader_cannot_find_is_an_error_naming_file_and_key() -> None:
    with pytest.raises(release_check.ReleaseMismatch, match=r"^values.yaml: no `image.digestt` found$"):
        release_check.yaml_scalar("image:\n  digest: ''\n", ["image", "digestt"], where="values.yaml")


def test_a_nested_key_is_read_only_under_its_own_parent() -> None:
    text = "runtimeImage:\n  repository: b\nimage:\n  # a comment\n  repository: a # trailing\n"
    assert release_check.yaml_scalar(text, ["image", "repository"], where="v") == "a"
    assert release_check.yaml_scalar(text, ["runtimeImage", "repository"], where="v") == "b"
