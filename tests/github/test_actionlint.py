"""actionlint, built from its Go module as `.ci/test` runs it: the workflows pass, and a broken one really fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agentry_dev.cluster.versions import cache_root
from tests.support.gotools import ACTIONLINT, ACTIONLINT_VERSION, GoToolBuildError, build, go_path

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"


@pytest.fixture(scope="session")
def actionlint() -> Path:
    """The cached binary, built on first use; without Go (and no cached build) there is nothing to run."""
    if go_path() is None and not ACTIONLINT.path(root=cache_root()).exists():
        pytest.skip("Go is not installed: actionlint is built from its Go module")
    try:
        return build(ACTIONLINT)
    except GoToolBuildError as error:
        pytest.fail(str(error), pytrace=False)


def lint(binary: Path, folder: Path, *names: str) -> subprocess.CompletedProcess[str]:
    argv = [str(binary), "-no-color", "-oneline", *(f".github/workflows/{n}" for n in names)]
    return subprocess.run(argv, cwd=folder, capture_output=True, text=True, timeout=60, check=False)


def test_it_is_the_pinned_release_built_from_source(actionlint: Path) -> None:
    version = subprocess.run([str(actionlint), "-version"], capture_output=True, text=True, check=True, timeout=30)
    assert version.stdout.splitlines()[:2] == [ACTIONLINT_VERSION, "installed by building from source"]


def test_ci_test_gets_the_cached_path_from_the_command_line(actionlint: Path) -> None:
    argv = [sys.executable, "-m", "tests.support.gotools", "actionlint"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{actionlint}\n", "")


def test_the_committed_workflows_are_clean(actionlint: Path) -> None:
    done = lint(actionlint, ROOT, *sorted(p.name for p in WORKFLOWS.glob("*.yml")))
    assert (done.returncode, done.stdout) == (0, "")


BREAKAGES = {
    "unknown-job": ("needs: [check, images]", "needs: [check, imagez]", 'needs job "imagez" which does not exist'),
    "unknown-step": ("steps.build.outputs.digest", "steps.biuld.outputs.digest", 'property "biuld" is not defined'),
    "unknown-output": ("needs.check.outputs.version", "needs.check.outputs.versoin", 'property "versoin"'),
    "bad-permission": ("id-token: write # cosign keyless\n", "id-token: writ\n", '"writ" is invalid as permission'),
}


@pytest.mark.parametrize(("old", "new", "error"), BREAKAGES.values(), ids=BREAKAGES.keys())
def test_a_broken_release_workflow_fails_the_lint(
    actionlint: Path, tmp_path: Path, old: str, new: str, error: str
) -> None:
    text = (WORKFLOWS / "release.yml").read_text()
    assert old in text
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "release.yml").write_text(text.replace(old, new))
    done = lint(actionlint, tmp_path, "release.yml")
    assert done.returncode == 1
    assert error in done.stdout


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed (.ci/bootstrap does it)")
def test_an_unquoted_variable_in_a_run_script_fails_through_shellcheck(actionlint: Path, tmp_path: Path) -> None:
    workflow = tmp_path / ".github" / "workflows" / "ci.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(
        "on: push\npermissions:\n  contents: read\njobs:\n  a:\n    runs-on: ubuntu-24.04\n"
        "    steps:\n      - run: rm -rf $TARGET\n"
    )
    done = lint(actionlint, tmp_path, "ci.yml")
    assert done.returncode == 1
    assert "SC2086" in done.stdout
    assert done.stdout.rstrip().endswith("[shellcheck]")
