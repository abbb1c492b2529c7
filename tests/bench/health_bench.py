"""Benchmark: the operator's CPU and memory while it polls 100 agents x 5 pods every 10 s, and failure-to-replacement.

Usage: .venv/bin/python -m tests.bench.health_bench RESULTS.json [--agents 100] [--pods 5] [--window 60]

The pods' /health answers come from one light responder process in this script (an aiohttp site bound to each
pod's loopback IP): the subject is the operator, and 500 real runtimes would not fit on this machine. The
responder answers with a complete report built from the runtime's own model. Everything runs on a dedicated local
control plane (`bench-health`), which is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from agentry_api.crdgen import render_crd
from agentry_dev.cluster.cluster import Cluster
from agentry_dev.cluster.network import free_ports
from tests.operator.health.reports import report_body
from tests.support.operator import OperatorProcess

NAMESPACE = "bench"
HEALTHY = report_body()


class Responder:
    """Answers /health on every Running agent pod's IP, like the runtime would."""

    def __init__(self) -> None:
        self.sites: dict[str, web.AppRunner] = {}
        self.silenced: set[str] = set()

    async def ensure(self, ip: str) -> None:
        if ip in self.sites or ip in self.silenced:
            return
        app = web.Application()

        async def health(_: web.Request) -> web.Response:
            return web.json_response(HEALTHY)

        app.router.add_get("/health", health)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, ip, 8080).start()
        self.sites[ip] = runner

    async def silence(self, ip: str) -> None:
        """Stop answering on `ip`, as a crashed runtime would."""
        self.silenced.add(ip)
        runner = self.sites.pop(ip, None)
        if runner is not None:
            await runner.cleanup()

    async def close(self) -> None:
        for runner in self.sites.values():
            await runner.cleanup()


def kubectl(cluster: Cluster, *args: str, stdin: str | None = None) -> str:
    argv = [str(cluster.bin_dir / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), *args]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=True, timeout=300).stdout


def running_pods(cluster: Cluster) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(
        kubectl(cluster, "get", "pods", "-n", NAMESPACE, "-l", "agentry.dev/agent", "-o", "json")
    )["items"]
    return [
        p
        for p in items
        if p["status"].get("podIP")
        and not p["metadata"].get("deletionTimestamp")
        and p["status"].get("phase") == "Running"
    ]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric(port: int, name: str) -> float:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


async def follow(cluster: Cluster, responder: Responder, *, until: float) -> int:
    """Bind the responder to new pods until the monotonic deadline; return the number of pods answering."""
    while time.monotonic() < until:
        for pod in await asyncio.to_thread(running_pods, cluster):
            await responder.ensure(pod["status"]["podIP"])
        await asyncio.sleep(1)
    return len(responder.sites)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    cluster = Cluster.up("bench-health")
    responder = Responder()
    operator: OperatorProcess | None = None
    try:
        kubectl(cluster, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=render_crd())
        kubectl(cluster, "create", "namespace", NAMESPACE)
        log = Path(tempfile.mkdtemp()) / "operator.log"
        operator = OperatorProcess(kubeconfig=cluster.kubeconfig, namespaces=(NAMESPACE,), log=log)
        operator.start(timeout=60)
        agents = [
            {
                "apiVersion": "agentry.dev/v1alpha1",
                "kind": "AgentDeployment",
                "metadata": {"name": f"agent-{i:03d}", "namespace": NAMESPACE},
                "spec": {
                    "agent": {"model": "test"},
                    "replicas": args.pods,
                    "security": {"auth": {"mode": "none"}},
                    "health": {"pollIntervalSeconds": 10},
                },
            }
            for i in range(args.agents)
        ]
        kubectl(cluster, "apply", "-f", "-", stdin=yaml.safe_dump_all(agents))
        total = args.agents * args.pods
        deadline = time.monotonic() + 600
        while len(responder.sites) < total and time.monotonic() < deadline:
            await follow(cluster, responder, until=time.monotonic() + 5)
            print(f"pods answering: {len(responder.sites)}/{total}", file=sys.stderr)
        await follow(cluster, responder, until=time.monotonic() + 25)  # a few poll rounds before measuring
        assert operator.process is not None
        pid = operator.process.pid
        polls0, cpu0, t0 = (
            metric(operator.metrics_port, "agentry_operator_health_polls_total"),
            cpu_seconds(pid),
            time.monotonic(),
        )
        await follow(cluster, responder, until=t0 + args.window)
        polls1, cpu1, t1 = (
            metric(operator.metrics_port, "agentry_operator_health_polls_total"),
            cpu_seconds(pid),
            time.monotonic(),
        )
        rss = operator.rss_bytes()
        restarts = metric(operator.metrics_port, "agentry_operator_pod_restarts_total")
        replacement = await failure_to_replacement(cluster, responder)
        return {
            "agents": args.agents,
            "pods": total,
            "poll_interval_seconds": 10,
            "window_seconds": round(t1 - t0, 1),
            "pods_answering": len(responder.sites),
            "operator_cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
            "operator_rss_mib": round(rss / 2**20, 1),
            "polls_per_second": round((polls1 - polls0) / (t1 - t0), 1),
            "restarts_during_window": restarts,
            "failure_to_replacement_answering_seconds": round(replacement, 1),
            "failure_to_replacement_bound_seconds": "failureThreshold 3 x pollInterval 10 s = 30 s, plus jitter",
        }
    finally:
        if operator is not None:
            operator.stop()
        await responder.close()
        cluster.down(purge=True)


async def failure_to_replacement(cluster: Cluster, responder: Responder) -> float:
    """Silence one pod (a crashed runtime) and time until its replacement answers /health."""
    victim = (await asyncio.to_thread(running_pods, cluster))[0]
    name = victim["metadata"]["name"]
    await responder.silence(victim["status"]["podIP"])
    responder.silenced.discard(victim["status"]["podIP"])  # a replacement may reuse the IP
    started = time.monotonic()
    while time.monotonic() - started < 180:
        pods = await asyncio.to_thread(running_pods, cluster)
        if name not in {p["metadata"]["name"] for p in pods}:
            for pod in pods:
                await responder.ensure(pod["status"]["podIP"])
            if all(p["status"]["podIP"] in responder.sites for p in pods):
                return time.monotonic() - started
        await asyncio.sleep(0.5)
    raise RuntimeError("no replacement within 180 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("output", type=Path)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--pods", type=int, default=5)
    parser.add_argument("--window", type=float, default=60.0)
    args = parser.parse_args()
    free_ports(1)  # fail early if the machine has no loopback networking
    result = asyncio.run(run(args))
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
