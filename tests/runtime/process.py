"""The runtime as a real process (`python -m agent_runtime`), the way a pod runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from agentry_api import wiring

from ..services import free_port


@dataclass
class RuntimeProcess:
    """A started runtime process and where its output goes."""

    process: subprocess.Popen[bytes]
    url: str
    stdout: Path
    stderr: Path

    def output(self) -> str:
        """Everything it wrote to stdout (JSON lines: logs and audit records)."""
        return self.stdout.read_text(errors="replace")

    def wait(self, timeout: float = 60) -> int:
        """Wait for the process to exit and return its exit code."""
        return self.process.wait(timeout=timeout)


def write_manifest(path: Path, spec: Mapping[str, Any], *, name: str = "agent") -> Path:
    """Write an AgentDeployment manifest as the operator's ConfigMap would hold it."""
    manifest = {
        "apiVersion": "agentry.dev/v1alpha1",
        "kind": "AgentDeployment",
        "metadata": {"name": name, "namespace": "test"},
        "spec": dict(spec),
    }
    path.write_text(yaml.safe_dump(manifest))
    return path


def runtime_command(config: Path, port: int) -> list[str]:
    """The command line of a runtime process."""
    return [sys.executable, "-m", "agent_runtime", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]


@contextmanager
def running_runtime(
    *, config: Path, env: Mapping[str, str], data_dir: Path, ready_timeout: float = 30
) -> Iterator[RuntimeProcess]:
    """Start the runtime, wait until /readyz answers 200, and kill it on exit if it still runs."""
    port = free_port()
    stdout, stderr = data_dir / "runtime.out", data_dir / "runtime.err"
    environ = {**os.environ, **env, wiring.DATA_DIR_ENV: str(data_dir)}
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(runtime_command(config, port), stdout=out, stderr=err, env=environ)
    handle = RuntimeProcess(process=process, url=f"http://127.0.0.1:{port}", stdout=stdout, stderr=stderr)
    try:
        _wait_ready(handle, ready_timeout)
        yield handle
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _wait_ready(handle: RuntimeProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if handle.process.poll() is not None:
            raise RuntimeError(f"runtime exited with {handle.process.returncode}:\n{handle.stderr.read_text()[-3000:]}")
        try:
            if httpx.get(f"{handle.url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"runtime not ready within {timeout}s:\n{handle.stderr.read_text()[-3000:]}")
