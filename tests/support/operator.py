"""The one way tests run the real operator: `agentry-operator` as a child process, started and stopped by pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from agentry_dev.cluster.network import free_ports

#: Fast retries, so a test sees recovery within seconds; everything else as in production.
TEST_SETTINGS = {
    "AGENTRY_LOG_FORMAT": "text",
    "AGENTRY_RETRY_BASE_SECONDS": "0.5",
    "AGENTRY_RETRY_MAX_SECONDS": "2",
}


@dataclass
class OperatorProcess:
    """Start, stop and kill one operator process; its log is kept in `log` for failure messages."""

    kubeconfig: Path
    namespaces: tuple[str, ...]
    log: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    exact_env: dict[str, str] | None = None
    """The operator's whole AGENTRY_* environment, as a chart renders it (no test settings, no host AGENTRY_*)."""
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    metrics_port: int = 0

    def start(self, *, timeout: float = 30.0) -> None:
        """Start and wait until kopf's liveness endpoint answers (the operator is watching by then)."""
        env = self._environment()
        binary = Path(sys.executable).parent / "agentry-operator"
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(binary)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while not self._alive():
            if self.process.poll() is not None:
                raise AssertionError(f"the operator exited with {self.process.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the operator did not come up within {timeout} s:\n{self.tail()}")
            time.sleep(0.2)

    def _environment(self) -> dict[str, str]:
        if self.exact_env is not None:
            self.port = int(urlsplit(self.exact_env["AGENTRY_LIVENESS_ENDPOINT"]).port or 0)
            host = {k: v for k, v in os.environ.items() if not k.startswith("AGENTRY_") and k != "KUBECONFIG"}
            return {**host, **self.exact_env, "KUBECONFIG": str(self.kubeconfig)}
        self.port, self.metrics_port = free_ports(2)
        return {
            **os.environ,
            **TEST_SETTINGS,
            **self.extra_env,
            "KUBECONFIG": str(self.kubeconfig),
            "AGENTRY_NAMESPACES": ",".join(self.namespaces),
            "AGENTRY_LIVENESS_ENDPOINT": f"http://127.0.0.1:{self.port}/healthz",
            "AGENTRY_METRICS_ENDPOINT": f"http://127.0.0.1:{self.metrics_port}/metrics",
        }

    def _alive(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, *, kill: bool = False, timeout: float = 20.0) -> int:
        """SIGTERM (graceful) or SIGKILL (a crash), and wait; returns the exit code."""
        if self.process is None:
            return 0
        process, self.process = self.process, None
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return process.returncode

    def rss_bytes(self) -> int:
        """Resident memory of the running operator process."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS in /proc status")

    def tail(self, lines: int = 60) -> str:
        """The end of the operator's log."""
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
