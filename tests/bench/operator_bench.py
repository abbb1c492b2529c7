"""Benchmark: `kubectl apply` of N AgentDeployments until all are Ready, against N plain Deployments.

Both sides run on one local control plane in one run: the plain side applies the very Deployments the
operator would render (same pod template, no operator involved) and waits until every one is available;
the operator side applies N AgentDeployments and waits until every one reports Ready=True. Each round uses
fresh namespaces (deleted before the next round starts), and rounds alternate which side goes first so drift
hits both alike. The operator's
resident memory is read after the largest N.

KWOK pods run no process, so every health poll of the operator finds its pod unreachable. The benchmark agents
therefore poll rarely and may not restart pods (spec.health): what is measured is reconciliation, not the
health monitor restarting pods that were never meant to answer.

    .venv/bin/python tests/bench/operator_bench.py results.json [--sizes 10 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agent_operator.config import OperatorConfig  # noqa: E402
from agent_operator.render import render_deployment  # noqa: E402
from agentry_dev.cluster.api import ApiClient  # noqa: E402
from agentry_dev.cluster.cluster import Cluster  # noqa: E402
from agentry_dev.cluster.components import kwok_node  # noqa: E402
from tests.support.agents import agent, manifest  # noqa: E402
from tests.support.operator import OperatorProcess  # noqa: E402

CRD = ROOT / "crds" / "agentry.dev_agentdeployments.yaml"
#: Health settings of the benchmark agents: poll once an hour, never restart (see the module docstring).
QUIET_HEALTH = {"pollIntervalSeconds": 3600, "maxRestartsPerHour": 0}


def kubectl(cluster: Cluster, *args: str, stdin: str | None = None) -> str:
    """Run kubectl against the benchmark cluster; raise with stderr on failure."""
    done = subprocess.run(
        [str(cluster.bin_dir / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr}")
    return done.stdout


def items(api: ApiClient, path: str) -> list[dict[str, Any]]:
    """List objects through the API directly (lighter than a kubectl process per poll)."""
    answer = api.request("GET", path)
    if answer.status != 200:
        return []
    found: list[dict[str, Any]] = answer.json()["items"]
    return found


def wait_all(count: Callable[[], int], *, total: int, timeout: float) -> float:
    """Seconds until `count()` reaches `total`, polling every 100 ms."""
    started = time.monotonic()
    while count() < total:
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"only {count()} of {total} ready after {timeout} s")
        time.sleep(0.1)
    return time.monotonic() - started


def plain_round(cluster: Cluster, *, namespace: str, n: int, timeout: float) -> float:
    """Apply N Deployments as the operator renders them, and time until all are available.

    The pods run as the namespace's default ServiceAccount: the per-agent one is the operator's to create.
    """
    config = OperatorConfig()
    docs = [render_deployment(agent(f"agent-{i}", namespace), config) for i in range(n)]
    for doc in docs:
        del doc["spec"]["template"]["spec"]["serviceAccountName"]
    api = cluster.client()

    def available() -> int:
        deployments = items(api, f"/apis/apps/v1/namespaces/{namespace}/deployments")
        return sum(
            1 for d in deployments if d.get("status", {}).get("availableReplicas", 0) >= d["spec"]["replicas"] >= 1
        )

    started = time.monotonic()
    kubectl(cluster, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(docs))
    return (time.monotonic() - started) + wait_all(available, total=n, timeout=timeout)


def operator_round(cluster: Cluster, *, namespace: str, n: int, timeout: float) -> float:
    """Apply N AgentDeployments, and time until every one reports Ready=True."""
    docs = [manifest(f"agent-{i}", namespace, health=QUIET_HEALTH) for i in range(n)]
    api = cluster.client()

    def ready() -> int:
        agents = items(api, f"/apis/agentry.dev/v1alpha1/namespaces/{namespace}/agentdeployments")
        return sum(
            1
            for a in agents
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in a.get("status", {}).get("conditions", [])
            )
        )

    started = time.monotonic()
    kubectl(cluster, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(docs))
    return (time.monotonic() - started) + wait_all(ready, total=n, timeout=timeout)


def add_nodes(cluster: Cluster, *, pods: int) -> None:
    """Enough KWOK nodes for `pods` (the cluster's own node takes 110 pods, as a kubelet would)."""
    api = cluster.client()
    for index in range(pods // 100 + 1):
        answer = api.request("POST", "/api/v1/nodes", kwok_node(f"bench-node-{index}"))
        if answer.status not in (201, 409):
            raise RuntimeError(f"creating a KWOK node failed: {answer.body}")


def clean(cluster: Cluster, namespaces: tuple[str, ...], *, timeout: float) -> None:
    """Delete a round's namespaces and wait until they are gone (untimed).

    Every round then starts on the same cluster, and the Service range (a /24) never runs out.
    """
    for namespace in namespaces:
        kubectl(cluster, "delete", "namespace", namespace, "--wait=false")
    api = cluster.client()
    wait_all(
        lambda: sum(api.request("GET", f"/api/v1/namespaces/{ns}").status == 404 for ns in namespaces),
        total=len(namespaces),
        timeout=timeout,
    )


def prepare(cluster: Cluster, namespace: str) -> None:
    """A namespace with its default ServiceAccount (pods need it) and the JWT Secret every agent references."""
    kubectl(cluster, "create", "namespace", namespace)
    api = cluster.client()
    wait_all(
        lambda: int(api.request("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/default").status == 200),
        total=1,
        timeout=60,
    )
    kubectl(cluster, "create", "secret", "generic", "jwt", "-n", namespace, "--from-literal=key=" + "k" * 32)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every round of every size; the operator watches exactly the namespaces of its rounds."""
    cluster = Cluster.up(args.cluster)
    kubectl(cluster, "apply", "--server-side", "--force-conflicts", "-f", str(args.crd))
    kubectl(cluster, "wait", "--for=condition=Established", "crd/agentdeployments.agentry.dev")
    suffix = str(int(time.time()))
    plan = [(n, r) for n in args.sizes for r in range(args.rounds)]
    add_nodes(cluster, pods=4 * max(args.sizes))
    namespaces = {(n, r): (f"plain-{n}-{r}-{suffix}", f"agents-{n}-{r}-{suffix}") for n, r in plan}
    log = Path(tempfile.mkdtemp(prefix="operator-bench-")) / "operator.log"
    operator = OperatorProcess(
        kubeconfig=cluster.kubeconfig,
        log=log,
        namespaces=tuple(ns for _, ns in namespaces.values()),
        extra_env={
            "AGENTRY_LOG_FORMAT": "json",
            "AGENTRY_LOG_LEVEL": "warning",
            "AGENTRY_RETRY_BASE_SECONDS": "2",
            "AGENTRY_RETRY_MAX_SECONDS": "60",
        },
    )
    operator.start()
    results: dict[str, Any] = {"sizes": {}, "operator_log": str(log)}
    try:
        for n, r in plan:
            plain_ns, agents_ns = namespaces[(n, r)]
            for namespace in (plain_ns, agents_ns):
                prepare(cluster, namespace)
            sides = [("plain", plain_round, plain_ns), ("operator", operator_round, agents_ns)]
            if r % 2:
                sides.reverse()
            timings = {name: round(fn(cluster, namespace=ns, n=n, timeout=args.timeout), 3) for name, fn, ns in sides}
            entry = results["sizes"].setdefault(str(n), {"plain_s": [], "operator_s": []})
            entry["plain_s"].append(timings["plain"])
            entry["operator_s"].append(timings["operator"])
            print(
                f"N={n} round {r}: plain {timings['plain']:.2f}s, operator {timings['operator']:.2f}s",
                file=sys.stderr,
                flush=True,
            )
            if n == max(args.sizes):
                rss = round(operator.rss_bytes() / 2**20, 1)
                results["operator_rss_mib_at_max_n"] = max(rss, results.get("operator_rss_mib_at_max_n", 0.0))
            clean(cluster, (plain_ns, agents_ns), timeout=args.timeout)
        for entry in results["sizes"].values():
            ratios = sorted(o / p for o, p in zip(entry["operator_s"], entry["plain_s"], strict=True))
            entry["ratio_per_round"] = [round(r, 2) for r in ratios]
            entry["ratio_median"] = round(statistics.median(ratios), 2)
            entry["ratio_of_means"] = round(sum(entry["operator_s"]) / sum(entry["plain_s"]), 2)
    finally:
        operator.stop()
        if not args.keep_cluster:
            cluster.down()
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    results["target"] = "operator within 1.5x of plain Deployments"
    return results


def main() -> int:
    """Parse arguments, run, write the JSON results."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("output", help="file to write the JSON results to")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100], help="agents per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per size (alternating which side goes first)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a round may take")
    parser.add_argument("--cluster", default="bench-operator", help="local cluster name")
    parser.add_argument("--crd", type=Path, default=CRD, help="CRD file to install (default: the committed one)")
    parser.add_argument("--keep-cluster", action="store_true", help="leave the cluster running afterwards")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the operator and the cluster
    results = run(args)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
