"""A taken liveness or metrics port: `agentry-operator` says which setting and port in one line, and exits."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_operator.config import OperatorConfig
from agent_operator.ports import PortInUse, claim
from agentry_dev.cluster.network import free_ports


@pytest.fixture
def taken() -> Iterator[int]:
    """A port another process's socket listens on (here, the test's own)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def endpoints(setting: str, taken: int) -> dict[str, str]:
    free_liveness, free_metrics = free_ports(2)
    ports = {"AGENTRY_LIVENESS_ENDPOINT": free_liveness, "AGENTRY_METRICS_ENDPOINT": free_metrics, setting: taken}
    return {
        "AGENTRY_LIVENESS_ENDPOINT": f"http://127.0.0.1:{ports['AGENTRY_LIVENESS_ENDPOINT']}/healthz",
        "AGENTRY_METRICS_ENDPOINT": f"http://127.0.0.1:{ports['AGENTRY_METRICS_ENDPOINT']}/metrics",
    }


@pytest.mark.parametrize("setting", ["AGENTRY_LIVENESS_ENDPOINT", "AGENTRY_METRICS_ENDPOINT"])
def test_a_taken_port_is_one_line_naming_the_setting_and_a_quick_exit(setting: str, taken: int, tmp_path: Path) -> None:
    env = {
        **os.environ,
        **endpoints(setting, taken),
        "KUBECONFIG": str(tmp_path / "no-cluster"),
        "AGENTRY_NAMESPACES": "team-a",
    }
    started = time.monotonic()
    result = subprocess.run(
        [str(Path(sys.executable).parent / "agentry-operator")],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == (
        f"agentry-operator: {setting}={env[setting]}: cannot listen on 127.0.0.1:{taken}: port already in use"
    )
    assert elapsed < 10


def test_claim_binds_the_metrics_socket_and_only_probes_the_liveness_port() -> None:
    liveness, metrics = free_ports(2)
    config = OperatorConfig(
        liveness_endpoint=f"http://127.0.0.1:{liveness}/healthz",
        metrics_endpoint=f"http://127.0.0.1:{metrics}/metrics",
    )
    ports = claim(config)
    assert ports.metrics is not None
    try:
        assert ports.metrics.getsockname() == ("127.0.0.1", metrics)
        with socket.socket() as sock:  # kopf can still bind the liveness port after the probe
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", liveness))
        with pytest.raises(PortInUse, match=f"AGENTRY_METRICS_ENDPOINT=.*127.0.0.1:{metrics}: port already in use"):
            claim(config)
    finally:
        ports.metrics.close()


def test_endpoints_turned_off_claim_nothing() -> None:
    assert claim(OperatorConfig(liveness_endpoint="", metrics_endpoint="")).metrics is None
