"""`agentry-runtime` refuses a bad configuration at start-up: exit code 2, the key named, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .harness import base_spec, merge
from .process import write_manifest


def run_cli(
    tmp_path: Path, spec: dict[str, object], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    config = write_manifest(tmp_path / "agent.yaml", spec)
    environ = {
        **os.environ,
        "AGENTRY_SECRETS_DIR": str(tmp_path / "secrets"),
        "AGENTRY_DATA_DIR": str(tmp_path),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "agent_runtime", "--config", str(config), "--port", "1"],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("overrides", "env", "expected"),
    [
        ({}, {}, "spec.security.auth.secretRef: secret file"),
        ({"agent": {"model": "BAD"}}, {"AGENTRY_SECRET_JWT__KEY": "k" * 32}, "spec.agent.model: String should match"),
        (
            {"agent": {"outputSchema": {"type": "object", "required": "x"}}},
            {"AGENTRY_SECRET_JWT__KEY": "k" * 32},
            "spec.agent.outputSchema at required: 'x' is not of type 'array'",
        ),
        (
            {"agent": {"outputSchema": {"type": "object", "properties": {"a": {"$ref": "https://example.com/a"}}}}},
            {"AGENTRY_SECRET_JWT__KEY": "k" * 32},
            "spec.agent.outputSchema: $ref 'https://example.com/a' is not in the schema; remote references are never",
        ),
        ({}, {"AGENTRY_SECRET_JWT__KEY": "short"}, "spec.security.auth.secretRef"),
    ],
    ids=["missing-secret", "bad-model", "bad-output-schema", "remote-ref-output-schema", "weak-jwt-key"],
)
def test_bad_configuration_exits_2_naming_the_key(
    tmp_path: Path, overrides: dict[str, object], env: dict[str, str], expected: str
) -> None:
    result = run_cli(tmp_path, merge(base_spec(), overrides), env)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_an_unreachable_database_fails_the_start_with_one_clear_line(tmp_path: Path) -> None:
    spec = merge(base_spec(), {"services": {"database": {"urlSecretRef": {"name": "pg", "key": "url"}}}})
    env = {
        "AGENTRY_SECRET_JWT__KEY": "k" * 32,
        "AGENTRY_SECRET_PG__URL": "postgresql://u:hunter2-secret@127.0.0.1:9/db",
    }
    result = run_cli(tmp_path, spec, env)
    assert result.returncode == 3
    assert "start-up failed: service database failed to start: cannot reach PostgreSQL" in result.stdout
    assert "hunter2-secret" not in result.stdout + result.stderr
