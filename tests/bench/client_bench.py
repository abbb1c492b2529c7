"""Benchmark: what each Kubernetes client costs the operator at start-up (import time, resident memory).

Each client is imported in a fresh interpreter, alternating clients round by round, together with what the
operator needs of it (an async client object and the typed resources it applies: Deployment, Service,
ConfigMap, ServiceAccount, PDB, HPA, NetworkPolicy, Pod, Secret). Import time is wall time of those imports;
memory is the interpreter's peak RSS afterwards, minus a bare interpreter's. The official clients are not
project dependencies, so the interpreter to measure with is passed in (a venv with `kubernetes`,
`kubernetes_asyncio` and `lightkube` installed):

    python3 -m venv /tmp/clientvenv && /tmp/clientvenv/bin/pip install kubernetes kubernetes_asyncio lightkube
    .venv/bin/python tests/bench/client_bench.py results.json --python /tmp/clientvenv/bin/python [--rounds 9]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
from pathlib import Path

#: What the operator would import of each client: the client object and every typed resource it applies.
CLIENTS: dict[str, str] = {
    "bare": "pass",
    "lightkube": (
        "from lightkube import AsyncClient\n"
        "from lightkube.resources.apps_v1 import Deployment\n"
        "from lightkube.resources.autoscaling_v2 import HorizontalPodAutoscaler\n"
        "from lightkube.resources.core_v1 import ConfigMap, Pod, Secret, Service, ServiceAccount\n"
        "from lightkube.resources.networking_v1 import NetworkPolicy\n"
        "from lightkube.resources.policy_v1 import PodDisruptionBudget\n"
    ),
    "kubernetes_asyncio": (
        "from kubernetes_asyncio import client\n"
        "apis = (client.CoreV1Api, client.AppsV1Api, client.PolicyV1Api, client.AutoscalingV2Api,"
        " client.NetworkingV1Api)\n"
        "models = (client.V1Deployment, client.V1Service, client.V2HorizontalPodAutoscaler)\n"
    ),
    "kubernetes": (
        "from kubernetes import client\n"
        "apis = (client.CoreV1Api, client.AppsV1Api, client.PolicyV1Api, client.AutoscalingV2Api,"
        " client.NetworkingV1Api)\n"
        "models = (client.V1Deployment, client.V1Service, client.V2HorizontalPodAutoscaler)\n"
    ),
}

PROBE = """
import resource, time
start = time.perf_counter()
{imports}
elapsed = time.perf_counter() - start
print(elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def measure(python: str, imports: str) -> tuple[float, float]:
    """(import seconds, peak RSS in MiB) of one fresh interpreter."""
    done = subprocess.run(
        [python, "-c", PROBE.format(imports=imports)], capture_output=True, text=True, check=True, timeout=120
    )
    seconds, rss_kib = done.stdout.split()
    return float(seconds), int(rss_kib) / 1024


def main() -> int:
    """Measure every client, alternating them round by round, and write the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--python", required=True, help="interpreter with the three clients installed")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in CLIENTS}
    for _ in range(args.rounds):
        for name, imports in CLIENTS.items():
            samples[name].append(measure(args.python, imports))
    bare_rss = statistics.median(rss for _, rss in samples["bare"])
    results = {
        name: {
            "import_ms_median": round(1000 * statistics.median(s for s, _ in runs), 1),
            "rss_mib_median": round(statistics.median(rss for _, rss in runs), 1),
            "rss_mib_over_bare": round(statistics.median(rss for _, rss in runs) - bare_rss, 1),
        }
        for name, runs in samples.items()
    }
    report = {"clients": results, "rounds": args.rounds, "machine": {"python": platform.python_version()}}
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for name, figures in results.items():
        print(f"{name:20} import {figures['import_ms_median']:7.1f} ms  rss +{figures['rss_mib_over_bare']:5.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
