"""A runtime that cannot start leaves one line naming the problem in its termination message and on stderr."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from agent_runtime.termination import MAX_MESSAGE_BYTES, one_line, termination_log
from agentry_api import wiring

from .harness import base_spec, merge
from .process import write_manifest

#: The console script pip installed next to this interpreter: the entry point a pod's command runs.
RUNTIME = str(Path(sys.executable).parent / "agentry-runtime")
JWT_ENV = {"AGENTRY_SECRET_JWT__KEY": "k" * 32}


def start(
    tmp_path: Path, *, config: Path, env: dict[str, str] | None = None, port: int = 1, log: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `agentry-runtime` until it exits, with its termination log in tmp_path."""
    environ = {
        **os.environ,
        wiring.SECRETS_DIR_ENV: str(tmp_path / "secrets"),
        wiring.DATA_DIR_ENV: str(tmp_path),
        wiring.TERMINATION_LOG_ENV: str(log or tmp_path / "termination-log"),
        **(env or {}),
    }
    argv = [RUNTIME, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.run(argv, capture_output=True, text=True, env=environ, timeout=60)


def the_line(tmp_path: Path) -> str:
    """The termination message, checked to be exactly one line."""
    text = (tmp_path / "termination-log").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert len(text.encode()) <= MAX_MESSAGE_BYTES + 1
    return lines[0]


def manifest(tmp_path: Path, overrides: Mapping[str, Any] | None = None) -> Path:
    return write_manifest(tmp_path / "agent.yaml", merge(base_spec(), overrides or {}))


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "agent.yaml"
    result = start(tmp_path, config=missing)
    assert result.returncode == wiring.EXIT_CONFIG, result.stderr
    line = the_line(tmp_path)
    assert f"cannot read {missing}" in line
    assert f"agentry-runtime: {line}" in result.stderr.splitlines()


def test_an_invalid_field_is_named_with_what_was_expected(tmp_path: Path) -> None:
    config = manifest(tmp_path, {"replicas": -1, "concurrency": {"maxConcurrentRequests": "many"}})
    result = start(tmp_path, config=config, env=JWT_ENV)
    assert result.returncode == wiring.EXIT_CONFIG, result.stderr
    line = the_line(tmp_path)
    assert line.startswith(f"invalid configuration in {config}: ")
    assert "spec.replicas: Input should be greater than or equal to 0" in line
    assert "spec.concurrency.maxConcurrentRequests: Input should be a valid integer" in line
    assert "Traceback" not in result.stderr


def test_a_missing_secret_file_names_the_field_and_the_file_but_no_value(tmp_path: Path) -> None:
    spec = {"services": {"cache": {"urlSecretRef": {"name": "redis", "key": "url"}}}}
    result = start(tmp_path, config=manifest(tmp_path, spec), env=JWT_ENV)
    assert result.returncode == wiring.EXIT_CONFIG, result.stderr
    line = the_line(tmp_path)
    secret_file = tmp_path / "secrets" / "redis" / "url"
    assert f"spec.services.cache.urlSecretRef: secret file {secret_file} not found" in line
    assert "k" * 32 not in line + result.stderr + result.stdout


def test_a_dependency_down_at_start_is_named_without_its_password(tmp_path: Path) -> None:
    spec = {"services": {"database": {"urlSecretRef": {"name": "pg", "key": "url"}}}}
    env = {**JWT_ENV, "AGENTRY_SECRET_PG__URL": "postgresql://u:hunter2-secret@127.0.0.1:9/db"}
    result = start(tmp_path, config=manifest(tmp_path, spec), env=env)
    assert result.returncode == wiring.EXIT_START_FAILED, result.stderr
    line = the_line(tmp_path)
    assert line.startswith("start-up failed: service database failed to start: cannot reach PostgreSQL")
    assert "hunter2-secret" not in line + result.stderr + result.stdout


def test_a_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = start(tmp_path, config=manifest(tmp_path), env=JWT_ENV, port=port)
    assert result.returncode == wiring.EXIT_START_FAILED, result.stderr
    assert the_line(tmp_path) == f"--port {port}: cannot bind 127.0.0.1:{port}: Address already in use"


def test_no_termination_log_directory_is_no_failure_and_nothing_is_created(tmp_path: Path) -> None:
    log = tmp_path / "absent" / "termination-log"
    result = start(tmp_path, config=tmp_path / "missing.yaml", log=log)
    assert result.returncode == wiring.EXIT_CONFIG, result.stderr
    assert "agentry-runtime: invalid configuration in" in result.stderr
    assert "Traceback" not in result.stderr
    assert not log.parent.exists()


def test_the_default_path_is_not_created_on_a_host() -> None:
    if Path(wiring.TERMINATION_LOG_PATH).exists():
        pytest.skip("running in a container whose kubelet mounted the termination log")
    assert termination_log({}) is None
    assert termination_log({wiring.TERMINATION_LOG_ENV: "/nonexistent-dir/log"}) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\n  b\tc\n", "a b c"),
        ("é" * 1000, "é" * ((MAX_MESSAGE_BYTES - 3) // 2) + "..."),
        ("x" * MAX_MESSAGE_BYTES, "x" * MAX_MESSAGE_BYTES),
    ],
    ids=["whitespace", "cut-on-a-character", "exactly-the-limit"],
)
def test_one_line_is_one_line_within_the_limit(text: str, expected: str) -> None:
    assert one_line(text) == expected
    assert len(one_line(text).encode()) <= MAX_MESSAGE_BYTES
