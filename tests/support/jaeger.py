"""A real Jaeger v2 (its all-in-one: OTLP receivers, in-memory storage, the query API) on loopback ports.

The binary is built from its Go module by `tests.support.gotools` (once per machine). Nothing is skipped:
a Jaeger that cannot be built or started fails the tests that need it, with its log tail.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from agentry_dev.cluster.network import free_ports
from tests.services import _stop, _tail
from tests.support.gotools import JAEGER, GoToolBuildError, build

#: Seconds Jaeger gets to report every component ready before the context manager gives up.
START_TIMEOUT = 60.0
HOST = "127.0.0.1"


@dataclass(frozen=True)
class JaegerPorts:
    """The loopback ports one Jaeger listens on, all picked free."""

    otlp_http: int
    otlp_grpc: int
    query_http: int
    query_grpc: int
    health_http: int
    health_grpc: int


def config(ports: JaegerPorts) -> dict[str, Any]:
    """Jaeger v2's configuration (an OpenTelemetry Collector's): OTLP in, memory storage, the query API out.

    Every listener is bound to 127.0.0.1 on a port of `ports`; the collector's own metrics server is off
    and the query service does not trace itself (it would export to the default localhost:4317).
    """
    memory = "memstore"
    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query", "healthcheckv2"],
            "pipelines": {
                "traces": {"receivers": ["otlp"], "processors": [], "exporters": ["jaeger_storage_exporter"]}
            },
            "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "info"}},
        },
        "extensions": {
            "jaeger_storage": {"backends": {memory: {"memory": {"max_traces": 10_000}}}},
            "jaeger_query": {
                "storage": {"traces": memory},
                "enable_tracing": False,
                "http": {"endpoint": f"{HOST}:{ports.query_http}"},
                "grpc": {"endpoint": f"{HOST}:{ports.query_grpc}"},
            },
            "healthcheckv2": {
                "use_v2": True,
                "http": {"endpoint": f"{HOST}:{ports.health_http}"},
                "grpc": {"endpoint": f"{HOST}:{ports.health_grpc}"},
            },
        },
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": f"{HOST}:{ports.otlp_grpc}"},
                    "http": {"endpoint": f"{HOST}:{ports.otlp_http}"},
                }
            }
        },
        "exporters": {"jaeger_storage_exporter": {"trace_storage": memory}},
    }


@dataclass(frozen=True)
class JaegerServer:
    """A running Jaeger: send spans to an OTLP endpoint, read them back with `traces`."""

    ports: JaegerPorts
    log: Path
    pid: int
    """The Jaeger process (benchmarks read its CPU time)."""

    @property
    def otlp_http_endpoint(self) -> str:
        """The OTLP/HTTP receiver's base URL (the exporter appends `/v1/traces`)."""
        return f"http://{HOST}:{self.ports.otlp_http}"

    @property
    def otlp_grpc_endpoint(self) -> str:
        """The OTLP/gRPC receiver, plaintext."""
        return f"http://{HOST}:{self.ports.otlp_grpc}"

    @property
    def query_url(self) -> str:
        """The base URL of the query service's HTTP API (and UI)."""
        return f"http://{HOST}:{self.ports.query_http}"

    def traces(self, service: str) -> list[dict[str, Any]]:
        """The stored traces with a span of `service`, as the query API's JSON (`traceID`, `spans`, `processes`)."""
        response = httpx.get(f"{self.query_url}/api/traces", params={"service": service, "limit": 1000}, timeout=10.0)
        response.raise_for_status()
        data: list[dict[str, Any]] | None = response.json()["data"]
        return data or []

    def wait_for_spans(self, service: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """`traces(service)` once they hold at least `count` spans in all; fails the test after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            traces = self.traces(service)
            if sum(len(trace["spans"]) for trace in traces) >= count:
                return traces
            if time.monotonic() > deadline:
                pytest.fail(
                    f"Jaeger stored fewer than {count} spans of {service!r} within {timeout}s: "
                    f"{json.dumps(traces)[:2000]}\n{_tail(self.log)}"
                )
            time.sleep(0.1)


def _wait_for_jaeger(server: JaegerServer, process: subprocess.Popen[bytes]) -> None:
    """Until the health check's v2 status (every component of the collector) says OK."""
    status = f"http://{HOST}:{server.ports.health_http}/status"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Jaeger exited with {process.returncode}:\n{_tail(server.log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(status, timeout=2.0).status_code == 200:
                return
        time.sleep(0.2)
    pytest.fail(f"Jaeger was not ready within {START_TIMEOUT}s:\n{_tail(server.log)}")


@contextlib.contextmanager
def running_jaeger(binary: Path | None = None) -> Iterator[JaegerServer]:
    """Jaeger (the cached build unless `binary` is given) with in-memory storage on free loopback ports; stopped after.

    The config file and the log are in a temporary directory removed at the end.
    """
    if binary is None:
        try:
            binary = build(JAEGER)
        except GoToolBuildError as error:
            pytest.fail(str(error), pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="agentry-jaeger-"))
    ports = JaegerPorts(*free_ports(6))
    config_file, log = root / "config.yaml", root / "jaeger.log"
    config_file.write_text(yaml.safe_dump(config(ports), sort_keys=False))
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [str(binary), "--config", str(config_file)], cwd=root, stdout=log_file, stderr=subprocess.STDOUT
        )
    server = JaegerServer(ports=ports, log=log, pid=process.pid)
    try:
        _wait_for_jaeger(server, process)
        yield server
    finally:
        _stop(process, grace=10)
        shutil.rmtree(root, ignore_errors=True)
