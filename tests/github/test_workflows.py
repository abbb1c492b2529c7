"""The GitHub workflows: pinned actions, least privilege, and a release whose chart installs the images it built."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
PINNED = re.compile(
    r"^\s*(?:- )?uses: (?P<action>[\w.-]+/[\w.-]+)@(?P<sha>[0-9a-f]{40}) # (?P<version>v\d+(\.\d+){0,2})$"
)
"""A `uses:` line as Dependabot and Renovate keep it: a full commit SHA, then the release it is."""
#: The scopes a job may be granted, each with the action whose presence in the job justifies it.
NEEDS = {"packages": "docker/login-action", "id-token": "sigstore/cosign-installer"}


def load(name: str) -> dict[str, Any]:
    doc: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the bare key `on` as the boolean true.
    doc["on"] = doc.pop(True)
    return doc


CI = load("ci.yml")
RELEASE = load("release.yml")
WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml"))


def steps(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(job_id, step) for job_id, job in doc["jobs"].items() for step in job["steps"]]


def step_using(job: dict[str, Any], action: str) -> dict[str, Any]:
    [step] = [s for s in job["steps"] if s.get("uses", "").startswith(f"{action}@")]
    assert isinstance(step, dict)
    return step


def step_running(job: dict[str, Any], command: str) -> dict[str, Any]:
    [step] = [s for s in job["steps"] if command in s.get("run", "")]
    assert isinstance(step, dict)
    return step


def test_there_are_exactly_the_two_workflows() -> None:
    assert [p.name for p in WORKFLOW_FILES] == ["ci.yml", "release.yml"]


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_every_action_is_pinned_by_commit_sha_with_its_version(path: Path) -> None:
    lines = [line for line in path.read_text().splitlines() if re.match(r"^\s*(- )?uses:", line)]
    assert lines
    unpinned = [line.strip() for line in lines if not PINNED.match(line)]
    assert unpinned == []


def test_one_action_release_has_one_sha_everywhere() -> None:
    seen: dict[str, set[tuple[str, str]]] = {}
    for path in WORKFLOW_FILES:
        for match in filter(None, map(PINNED.match, path.read_text().splitlines())):
            seen.setdefault(match["action"], set()).add((match["sha"], match["version"]))
    assert {action: len(pins) for action, pins in seen.items() if len(pins) > 1} == {}


@pytest.mark.parametrize("doc", [CI, RELEASE], ids=["ci", "release"])
def test_the_default_token_reads_the_code_and_nothing_else(doc: dict[str, Any]) -> None:
    assert doc["permissions"] == {"contents": "read"}


@pytest.mark.parametrize(("doc", "job_id"), [(d, j) for d in (CI, RELEASE) for j in d["jobs"]])
def test_a_job_gets_a_write_scope_only_when_it_runs_what_needs_it(doc: dict[str, Any], job_id: str) -> None:
    job = doc["jobs"][job_id]
    granted = {scope for scope, level in job.get("permissions", {}).items() if level == "write"}
    uses = {step.get("uses", "").split("@")[0] for step in job["steps"]}
    assert granted == {scope for scope, action in NEEDS.items() if action in uses}
    assert set(job.get("permissions", {})) <= {"contents", *NEEDS}
    assert job.get("permissions", {}).get("contents", "read") == "read"


def test_checkout_never_leaves_the_token_in_the_clone() -> None:
    checkouts = [step for _, step in steps(CI) + steps(RELEASE) if step.get("uses", "").startswith("actions/checkout@")]
    assert len(checkouts) == 1 + len(RELEASE["jobs"])
    assert all(step["with"]["persist-credentials"] is False for step in checkouts)


def test_ci_runs_the_readme_test_command_on_every_push_and_pull_request() -> None:
    assert set(CI["on"]) == {"push", "pull_request"}
    assert CI["concurrency"]["cancel-in-progress"] is True
    [job] = CI["jobs"].values()
    assert job["runs-on"].startswith("ubuntu-")
    assert step_running(job, ".ci/run")["run"].endswith("bash .ci/run")


def test_ci_sets_up_the_python_the_project_is_checked_against() -> None:
    [job] = CI["jobs"].values()
    mypy_python = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["python_version"]
    assert step_using(job, "actions/setup-python")["with"]["python-version"] == mypy_python


def test_ci_go_is_new_enough_for_every_go_module_here() -> None:
    [job] = CI["jobs"].values()
    go = tuple(int(part) for part in step_using(job, "actions/setup-go")["with"]["go-version"].split("."))
    wanted = [
        tuple(int(part) for part in match.group(1).split("."))
        for mod in ROOT.glob("tests/**/go.mod")
        if (match := re.search(r"^go (\d+\.\d+(?:\.\d+)?)$", mod.read_text(), re.MULTILINE))
    ]
    assert wanted
    assert all(go >= need for need in wanted)


def test_a_release_starts_from_a_version_tag_and_first_runs_the_release_check() -> None:
    assert RELEASE["on"] == {"push": {"tags": ["v*"]}}
    assert RELEASE["concurrency"]["cancel-in-progress"] is False
    check = RELEASE["jobs"]["check"]
    run = step_running(check, ".ci/release_check.py")
    assert run["id"] == "check"
    assert '--tag "$GITHUB_REF_NAME"' in run["run"]
    assert run["run"].endswith('>> "$GITHUB_OUTPUT"')
    assert RELEASE["jobs"]["images"]["needs"] == "check"
    assert RELEASE["jobs"]["chart"]["needs"] == ["check", "images"]


def test_the_check_job_passes_on_every_key_the_release_check_prints() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    argv = [sys.executable, str(ROOT / ".ci" / "release_check.py"), "--tag", f"v{version}", "--owner", "agentry"]
    printed = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout
    keys = [line.split("=", 1)[0] for line in printed.splitlines()]
    outputs = RELEASE["jobs"]["check"]["outputs"]
    assert outputs == {key: f"${{{{ steps.check.outputs.{key} }}}}" for key in keys}


def test_both_images_are_built_for_amd64_and_arm64_from_their_dockerfiles() -> None:
    images = RELEASE["jobs"]["images"]
    matrix = images["strategy"]["matrix"]["include"]
    assert {entry["dockerfile"] for entry in matrix} == {"operator/Dockerfile", "agent_image/Dockerfile"}
    assert all((ROOT / entry["dockerfile"]).is_file() for entry in matrix)
    assert {entry["image"] for entry in matrix} == {
        "${{ needs.check.outputs.operator-image }}",
        "${{ needs.check.outputs.runtime-image }}",
    }
    build = step_using(images, "docker/build-push-action")["with"]
    assert build["platforms"] == "${{ env.PLATFORMS }}"
    assert images["env"]["PLATFORMS"].split(",") == ["linux/amd64", "linux/arm64"]
    assert step_using(images, "docker/setup-qemu-action")["with"]["platforms"] == "arm64"
    assert (build["file"], build["context"], build["push"]) == ("${{ matrix.dockerfile }}", ".", True)


def test_images_carry_an_sbom_and_full_provenance() -> None:
    build = step_using(RELEASE["jobs"]["images"], "docker/build-push-action")["with"]
    assert build["sbom"] is True
    assert build["provenance"] == "mode=max"


@pytest.mark.parametrize("dockerfile", ["operator/Dockerfile", "agent_image/Dockerfile"])
def test_the_build_args_are_the_arguments_each_dockerfile_declares_for_its_labels(dockerfile: str) -> None:
    build = step_using(RELEASE["jobs"]["images"], "docker/build-push-action")["with"]
    passed = dict(line.split("=", 1) for line in build["build-args"].splitlines())
    declared = set(re.findall(r"^ARG (\w+)=", (ROOT / dockerfile).read_text(), re.MULTILINE))
    assert set(passed) == {"VERSION", "REVISION", "SOURCE"} <= declared
    assert passed["VERSION"] == "${{ env.VERSION }}"
    assert passed["REVISION"] == "${{ github.sha }}"


def test_the_image_tag_and_the_chart_version_and_app_version_are_one_value() -> None:
    images, chart = RELEASE["jobs"]["images"], RELEASE["jobs"]["chart"]
    assert images["env"]["VERSION"] == chart["env"]["VERSION"] == "${{ needs.check.outputs.version }}"
    assert step_using(images, "docker/build-push-action")["with"]["tags"] == "${{ env.IMAGE }}:${{ env.VERSION }}"
    package = step_running(chart, "helm package")["run"]
    assert 'helm package helm/agentry --version "$VERSION" --app-version "$VERSION"' in package
    assert 'helm push "$RUNNER_TEMP/chart/agentry-${VERSION}.tgz" "$CHARTS"' in package
    assert chart["env"]["CHARTS"] == "${{ needs.check.outputs.charts }}"


def test_the_chart_default_image_tags_are_empty_so_app_version_picks_them() -> None:
    values = yaml.safe_load((ROOT / "helm" / "agentry" / "values.yaml").read_text())
    assert (values["image"]["tag"], values["runtimeImage"]["tag"]) == ("", "")


def test_every_image_and_the_chart_are_signed_by_digest() -> None:
    images, chart = RELEASE["jobs"]["images"], RELEASE["jobs"]["chart"]
    sign = step_running(images, "cosign sign")
    assert sign["env"]["DIGEST"] == "${{ steps.build.outputs.digest }}"
    assert sign["run"] == 'cosign sign --yes --recursive "${IMAGE}@${DIGEST}"'
    attest = step_running(images, "cosign attest")
    assert "--type spdxjson" in attest["run"]
    assert '"${IMAGE}@${manifest}"' in attest["run"]
    assert 'cosign sign --yes "${CHARTS#oci://}/agentry@${digest}"' in step_running(chart, "helm push")["run"]
