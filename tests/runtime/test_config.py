"""Loading the runtime's configuration: manifest or spec, secrets from env or files, errors naming keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent_runtime.config import ConfigError, load_config
from agentry_api import wiring

from .harness import JWT_KEY, base_spec
from .process import write_manifest


def secrets_env(tmp_path: Path) -> dict[str, str]:
    return {wiring.SECRETS_DIR_ENV: str(tmp_path / "secrets")}


def write_secret(tmp_path: Path, name: str, key: str, value: str) -> None:
    path = tmp_path / "secrets" / name / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value)


def test_a_manifest_with_secret_files(tmp_path: Path) -> None:
    write_secret(tmp_path, "jwt", "key", JWT_KEY + "\n")
    config = load_config(write_manifest(tmp_path / "a.yaml", base_spec(), name="triage"), environ=secrets_env(tmp_path))
    assert (config.name, config.namespace) == ("triage", "test")
    assert config.spec.agent.model == "test"
    assert config.secret("spec.security.auth.secretRef") == JWT_KEY  # the trailing newline is dropped


def test_a_bare_spec_and_an_env_override(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(base_spec()))
    env = {**secrets_env(tmp_path), "AGENTRY_SECRET_JWT__KEY": "from-env"}
    config = load_config(path, environ=env)
    assert (config.name, config.namespace) == ("agent", "default")
    assert config.secret("spec.security.auth.secretRef") == "from-env"


def test_every_missing_secret_is_named(tmp_path: Path) -> None:
    spec = base_spec()
    spec["services"] = {"database": {"urlSecretRef": {"name": "pg", "key": "url"}}}
    with pytest.raises(ConfigError) as caught:
        load_config(write_manifest(tmp_path / "a.yaml", spec), environ=secrets_env(tmp_path))
    secrets = tmp_path / "secrets"
    assert caught.value.lines == [
        f"spec.services.database.urlSecretRef: secret file {secrets}/pg/url not found (nor env AGENTRY_SECRET_PG__URL)",
        f"spec.security.auth.secretRef: secret file {secrets}/jwt/key not found (nor env AGENTRY_SECRET_JWT__KEY)",
    ]


@pytest.mark.parametrize(
    ("document", "line"),
    [
        ({"spec": {"agent": {"model": "Not A Model"}}}, "spec.agent.model: String should match pattern"),
        ({"agent": {"model": "test"}, "replicas": -1}, "spec.replicas: Input should be greater than or equal to 0"),
        ({"agent": {"model": "test"}, "concurency": {}}, "spec.concurency: Extra inputs are not permitted"),
        ([1, 2], "(root): expected a mapping"),
    ],
)
def test_invalid_documents_name_the_key(tmp_path: Path, document: object, line: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=secrets_env(tmp_path))
    assert any(problem.startswith(line) for problem in caught.value.lines), caught.value.lines


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, environ={})
