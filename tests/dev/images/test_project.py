"""A user's agent image: its content key (what its build reads, the runtime under it) and the example's lock."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agentry_dev.images.build import context_digests, plan_project
from agentry_dev.images.plan import ImageRef, project_image

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "code-agent"
RUNTIME = ImageRef("localhost/agentry/agent-runtime", "r1")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the example project, to edit freely."""
    copy = tmp_path / "code-agent"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return copy


def key(project: Path, runtime: ImageRef = RUNTIME) -> str:
    return plan_project(project, name="support-bot", runtime=runtime, root=project / "cache").image.tag


def test_the_image_is_named_after_the_project_and_keyed_by_what_its_build_reads(project: Path) -> None:
    planned = plan_project(project, name="support-bot", runtime=RUNTIME, root=project / "cache")
    digests = context_digests(project_image("support-bot"), repo=project)

    assert planned.image.repository == "localhost/agentry/support-bot"
    assert planned.archive == project / "cache" / "images" / "archives" / f"support-bot-{planned.image.tag}.tar"
    assert set(digests) == {
        "Dockerfile",
        ".dockerignore",
        "pyproject.toml",
        "requirements/build.lock",
        "support_bot/__init__.py",
        "support_bot/agent.py",
    }


@pytest.mark.parametrize(
    ("edit", "changes"),
    [
        ("support_bot/agent.py", True),
        ("Dockerfile", True),
        ("pyproject.toml", True),
        ("tests/test_support_bot.py", False),  # not copied into the image
        ("README.md", False),
        ("support_bot/__pycache__/agent.cpython-311.pyc", False),  # excluded by .dockerignore
    ],
)
def test_an_edit_changes_the_key_only_when_the_build_reads_the_file(project: Path, edit: str, changes: bool) -> None:
    before = key(project)
    path = project / edit
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((path.read_text() if path.exists() else "") + "\n# edited\n")
    assert (key(project) != before) is changes


def test_a_new_runtime_image_changes_the_key(project: Path) -> None:
    assert key(project) != key(project, ImageRef(RUNTIME.repository, "r2"))


def test_the_examples_build_lock_is_the_runtime_images_own() -> None:
    def pins(path: Path) -> list[str]:
        return [line for line in path.read_text().splitlines() if not line.startswith("#")]

    assert pins(EXAMPLE / "requirements" / "build.lock") == pins(ROOT / "agent_image" / "requirements" / "build.lock")
