"""Benchmark: the real node. Cold and warm start, apply-to-Ready of 1, 10 and 30 agents, memory of the node.

One run starts a cluster with a real node (`bench-node`), installs the chart with the locally built images,
then for each size applies that many AgentDeployments in a fresh namespace and times until every one reports
Ready=True (its pod's readiness probe passed on the real kubelet); the namespace is deleted before the next
size. The node's daemons' resident memory is read at the end, and the pods' memory from their cgroups.
Warm start: a second `up` of the same cluster after `down` (binaries and images cached).

    .venv/bin/python tests/bench/node_bench.py results.json [--sizes 1 10 30]
"""

from __future__ import annotations

import argparse
import json
import platform
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agentry_dev import deploy  # noqa: E402
from agentry_dev.cluster import hostnode  # noqa: E402
from agentry_dev.cluster.cluster import Cluster  # noqa: E402

NAME = "bench-node"
READY_TIMEOUT = 600.0
"""Seconds one size may take before the benchmark gives up (30 pods need well under two minutes here)."""


def _kubectl(cluster: Cluster, *args: str, stdin: str | None = None) -> str:
    argv = [str(cluster.bin_dir / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), *args]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=True, timeout=300).stdout


def _manifests(namespace: str, count: int) -> str:
    documents: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "jwt", "namespace": namespace},
            "stringData": {"key": secrets.token_hex(32)},
        }
    ]
    for index in range(count):
        spec = {
            "agent": {"model": "test", "instructions": "You answer questions."},
            "security": {"auth": {"secretRef": {"name": "jwt", "key": "key"}}},
            "pod": {"resources": {"requests": {"cpu": "10m", "memory": "64Mi"}}},
        }
        documents.append(
            {
                "apiVersion": "agentry.dev/v1alpha1",
                "kind": "AgentDeployment",
                "metadata": {"name": f"agent-{index}", "namespace": namespace},
                "spec": spec,
            }
        )
    return yaml.safe_dump_all(documents)


def _ready_count(cluster: Cluster, namespace: str) -> int:
    found = json.loads(_kubectl(cluster, "get", "agentdeployments", "-n", namespace, "-o", "json"))
    return sum(
        1
        for item in found["items"]
        if any(c["type"] == "Ready" and c["status"] == "True" for c in item.get("status", {}).get("conditions", []))
    )


def measure_size(cluster: Cluster, count: int) -> dict[str, float]:
    """Apply `count` agents at once; seconds until all are Ready."""
    namespace = f"bench-{count}-{secrets.token_hex(2)}"
    _kubectl(cluster, "create", "namespace", namespace)
    started = time.monotonic()
    _kubectl(cluster, "apply", "--server-side", "-f", "-", stdin=_manifests(namespace, count))
    while _ready_count(cluster, namespace) < count:
        if time.monotonic() - started > READY_TIMEOUT:
            raise RuntimeError(f"{count} agents not Ready after {READY_TIMEOUT:.0f}s")
        time.sleep(1.0)  # kubectl costs CPU the pods starting on 2 cores need
    seconds = time.monotonic() - started
    _kubectl(cluster, "delete", "namespace", namespace, "--wait=true", "--timeout=300s")
    return {"agents": count, "apply_to_all_ready_s": round(seconds, 2)}


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def node_memory(cluster: Cluster) -> dict[str, float]:
    """Resident memory of the node's daemons, and of all pods (the kubelet's cgroup root, memory hierarchy)."""
    memory = {f"{c}_rss_mib": _rss_mib(cluster.pids[c]) for c in ("containerd", "kubelet", "kube-proxy")}
    usage = hostnode.CGROUP_ROOT / "memory" / cluster.layout.cgroup_name / "pods" / "memory.usage_in_bytes"
    if usage.exists():
        memory["pods_memory_mib"] = round(int(usage.read_text()) / 2**20, 1)
    return memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 30])
    args = parser.parse_args()

    started = time.monotonic()
    images = deploy.build_images()
    images_s = time.monotonic() - started
    results: dict[str, Any] = {"machine": platform.platform(), "images_s": round(images_s, 1)}
    for attempt in ("first", "second"):
        started = time.monotonic()
        cluster = deploy.start_cluster(NAME, images, timeout=300)
        deploy.install(cluster)
        results[f"{attempt}_up_and_chart_s"] = round(time.monotonic() - started, 1)
        results[f"{attempt}_up_timings"] = cluster.timings
        if attempt == "second":
            break
        results["sizes"] = [measure_size(cluster, count) for count in args.sizes]
        _kubectl(cluster, "create", "namespace", "bench-memory")
        _kubectl(cluster, "apply", "--server-side", "-f", "-", stdin=_manifests("bench-memory", 10))
        while _ready_count(cluster, "bench-memory") < 10:
            time.sleep(0.5)
        results["memory_with_10_agents"] = node_memory(cluster)
        started = time.monotonic()
        cluster.down()
        results["down_s"] = round(time.monotonic() - started, 1)
    cluster.down(purge=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
