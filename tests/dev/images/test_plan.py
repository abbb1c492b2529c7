"""Image content keys and build plans: what changes a key and what does not, without building anything."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from agentry_dev.images import plan
from agentry_dev.images.build import Layout, context_digests, make_plan, mmdebstrap_argv
from agentry_dev.images.plan import BaseRecipe, ImageRef

ROOT = Path(__file__).resolve().parents[3]
#: What the two Dockerfiles read from the repository, plus neighbours that are in neither image.
CONTEXT = [
    "pyproject.toml",
    "README.md",
    "agent_image/Dockerfile",
    "agent_image/Dockerfile.dockerignore",
    "agent_image/requirements",
    "agent_image/agent_runtime",
    "operator/Dockerfile",
    "operator/Dockerfile.dockerignore",
    "operator/requirements",
    "operator/agentry_api",
    "operator/agent_operator",
    "operator/agentry_cli",
]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the build contexts, to edit freely."""
    copy = tmp_path / "repo"
    for name in CONTEXT:
        source, target = ROOT / name, copy / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return copy


def keys(repo: Path) -> dict[str, str]:
    return {item.name: item.image.tag for item in make_plan(cache=Layout(repo / "cache"), repo=repo)}


def test_the_plan_builds_the_base_first_and_tags_every_image_with_its_key(repo: Path) -> None:
    items = make_plan(cache=Layout(repo / "cache"), repo=repo)
    assert [item.name for item in items] == list(plan.IMAGE_NAMES) == ["base", "pause", "runtime", "operator"]
    assert [item.image.repository for item in items] == [
        "localhost/agentry/python-base",
        "localhost/agentry/pause",
        "localhost/agentry/agent-runtime",
        "localhost/agentry/operator",
    ]
    for item in items:
        assert len(item.image.tag) == plan.KEY_LENGTH and int(item.image.tag, 16) >= 0
        assert item.archive == repo / "cache" / "archives" / f"{item.name}-{item.image.tag}.tar"
    assert keys(repo) == keys(repo)


@pytest.mark.parametrize(
    ("edit", "changed"),
    [
        ("agent_image/agent_runtime/__main__.py", {"runtime"}),
        ("agent_image/requirements/runtime.lock", {"runtime"}),
        ("agent_image/Dockerfile", {"runtime"}),
        ("operator/agent_operator/main.py", {"operator"}),
        ("operator/requirements/operator.lock", {"operator"}),
        ("operator/Dockerfile.dockerignore", {"operator"}),
        ("operator/agentry_api/wiring.py", {"runtime", "operator"}),
        ("pyproject.toml", {"runtime", "operator"}),
        # Part of both wheels' metadata (the long description), so part of both images.
        ("README.md", {"runtime", "operator"}),
        # In neither image: the CLI, bytecode and caches the ignore files keep out of the context.
        ("operator/agentry_cli/main.py", set()),
        ("agent_image/agent_runtime/__pycache__/app.cpython-311.pyc", set()),
        ("operator/agent_operator/.mypy_cache/x.json", set()),
    ],
)
def test_an_edit_changes_the_keys_of_the_images_that_contain_it_only(repo: Path, edit: str, changed: set[str]) -> None:
    before = keys(repo)
    target = repo / edit
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a") as handle:
        handle.write("\n# edited\n")
    after = keys(repo)
    assert {name for name in before if before[name] != after[name]} == changed


def test_a_new_source_file_and_an_executable_bit_change_the_key(repo: Path) -> None:
    before = keys(repo)["runtime"]
    new = repo / "agent_image/agent_runtime/extra.py"
    new.write_text("X = 1\n")
    with_file = keys(repo)["runtime"]
    new.chmod(0o755)
    assert len({before, with_file, keys(repo)["runtime"]}) == 3


def test_a_changed_base_recipe_rebuilds_everything_built_on_it() -> None:
    recipe = BaseRecipe()
    assert plan.base_key(recipe) == plan.base_key(BaseRecipe())
    for changed in (
        replace(recipe, packages=(*recipe.packages, "tzdata")),
        replace(recipe, suite="trixie"),
        replace(recipe, purge=()),
        replace(recipe, architecture="arm64"),
    ):
        assert plan.base_key(changed) != plan.base_key(recipe)
    files = {"agent_image/Dockerfile": "a"}
    args = {"PYTHON_IMAGE": "localhost/agentry/python-base:1"}
    one = plan.dockerfile_key(name="runtime", files=files, build_args=args, base="1")
    assert one != plan.dockerfile_key(name="runtime", files=files, build_args=args, base="2")
    assert one != plan.dockerfile_key(name="runtime", files=files, build_args={**args, "VERSION": "2"}, base="1")
    assert one != plan.dockerfile_key(name="operator", files=files, build_args=args, base="1")


def test_the_pause_key_follows_its_source_and_flags() -> None:
    key = plan.pause_key(source_sha256="a")
    assert key == plan.pause_key(source_sha256="a", cflags=plan.PAUSE_CFLAGS)
    assert key != plan.pause_key(source_sha256="b")
    assert key != plan.pause_key(source_sha256="a", cflags=["-O2"])
    assert "-static" in plan.PAUSE_CFLAGS


def test_digest_key_ignores_order_and_sees_every_value() -> None:
    assert plan.digest_key({"a": 1, "b": [1, 2]}) == plan.digest_key({"b": [1, 2], "a": 1})
    assert plan.digest_key({"a": 1, "b": [1, 2]}) != plan.digest_key({"a": 1, "b": [2, 1]})


def test_copy_sources_are_the_context_paths_of_the_real_dockerfiles() -> None:
    runtime = plan.copy_sources((ROOT / "agent_image/Dockerfile").read_text())
    assert runtime == [
        "agent_image/requirements",
        "pyproject.toml",
        "README.md",
        "operator/agentry_api",
        "agent_image/agent_runtime",
    ]
    operator = plan.copy_sources((ROOT / "operator/Dockerfile").read_text())
    assert "operator/agent_operator" in operator and "agent_image/agent_runtime" not in operator
    text = "FROM x AS a\nCOPY --from=a /opt /opt\n# COPY no/\nCOPY --chown=1:1 a \\\n  b/ /dst/\nADD c.tar /\n"
    assert plan.copy_sources(text) == ["a", "b", "c.tar"]


@pytest.mark.parametrize(
    ("path", "sent"),
    [
        ("pyproject.toml", True),
        ("agent_image/agent_runtime/app.py", True),
        ("agent_image/agent_runtime/security/__pycache__/jwt.cpython-311.pyc", False),
        ("agent_image/agent_runtime/x.pyc", False),
        ("operator/agent_operator/main.py", False),
        ("tests/conftest.py", False),
        ("agent_image/Dockerfile", False),
    ],
)
def test_in_context_follows_the_runtime_ignore_file(path: str, sent: bool) -> None:
    rules = plan.ignore_rules((ROOT / "agent_image/Dockerfile.dockerignore").read_text())
    assert plan.in_context(path, rules) is sent


def test_context_digests_hold_the_dockerfile_its_ignore_file_and_the_copied_files_only() -> None:
    digests = context_digests(plan.DOCKERFILE_IMAGES[0], repo=ROOT)
    assert {"agent_image/Dockerfile", "agent_image/Dockerfile.dockerignore", "pyproject.toml"} <= set(digests)
    assert "agent_image/agent_runtime/__main__.py" in digests
    assert not [name for name in digests if "__pycache__" in name or name.startswith("operator/agent_operator")]


def test_pip_settings_pass_the_index_through_and_leave_host_paths_out() -> None:
    listing = (
        ":env:.cert='/etc/ssl/certs/ca-certificates.crt'\n"
        ":env:.default-timeout='180'\n"
        ":env:.find-links='/opt/wheels'\n"
        "global.index-url='https://mirror.example/simple'\n"
        "not a setting\n"
    )
    settings = plan.parse_pip_config(listing)
    assert settings == {
        "cert": "/etc/ssl/certs/ca-certificates.crt",
        "timeout": "180",
        "find-links": "/opt/wheels",
        "index-url": "https://mirror.example/simple",
    }
    conf = plan.build_pip_conf(settings)
    assert conf.splitlines()[:2] == ["[global]", "break-system-packages = true"]
    assert "index-url = https://mirror.example/simple" in conf and "timeout = 180" in conf
    assert "find-links" not in conf and "cert" not in conf


def test_helm_set_args_name_values_the_chart_has() -> None:
    refs = {"operator": ImageRef("localhost/agentry/operator", "k1"), "runtime": ImageRef("r/rt", "k2")}
    args = plan.helm_set_args(refs)
    assert args[::2] == ["--set"] * 5
    pairs = dict(arg.split("=", 1) for arg in args[1::2])
    assert pairs == {
        "image.repository": "localhost/agentry/operator",
        "image.tag": "k1",
        "image.pullPolicy": "Never",
        "runtimeImage.repository": "r/rt",
        "runtimeImage.tag": "k2",
    }
    values = yaml.safe_load((ROOT / "helm/agentry/values.yaml").read_text())
    for dotted in pairs:
        section, key = dotted.split(".")
        assert key in values[section], dotted


def test_mmdebstrap_gets_the_recipe_and_keeps_downloads_in_the_cache(tmp_path: Path) -> None:
    recipe = BaseRecipe()
    argv = mmdebstrap_argv(recipe, rootfs=tmp_path / "rootfs", debs=tmp_path / "debs")
    assert argv[:3] == ["mmdebstrap", "--variant=essential", "--architectures=amd64"]
    assert f"--include={','.join(recipe.packages)}" in argv
    assert "--dpkgopt=path-exclude=/usr/share/doc/*" in argv
    assert argv.index("--dpkgopt=path-include=/usr/share/doc/*/copyright") > argv.index(
        "--dpkgopt=path-exclude=/usr/share/doc/*"
    )
    assert f"--customize-hook=sync-out /var/cache/apt/archives {tmp_path / 'debs'}" in argv
    assert argv[-5:] == ["bookworm", str(tmp_path / "rootfs"), *recipe.sources]
