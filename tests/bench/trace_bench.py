"""Benchmark: what tracing costs the runtime's throughput, at 100% and 10% sampling, against tracing off.

Three real runtime processes (`python -m agent_runtime`, JWT auth, audit trail, SQLite, TestModel) serve the
same agent: one without tracing, one exporting every trace and one exporting a tenth, both over OTLP/HTTP to a
real Jaeger (built from its Go module, tests/support/jaeger.py). The load comes from this process over loopback:
`--concurrency` clients posting /v1/run, `--requests` per round, the three runtimes in turn within each of
`--rounds` rounds (so drift on the machine hits all three alike), every loop bounded. The result is each
runtime's median requests per second and the traced/untraced ratios, measured in this one run, with the number
of spans Jaeger stored as a check that the traced runtimes really exported.

    .venv/bin/python tests/bench/trace_bench.py results.json [--requests 300] [--rounds 5] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.runtime.harness import Backend, auth  # noqa: E402
from tests.runtime.process import RuntimeProcess, running_runtime, write_manifest  # noqa: E402
from tests.support.jaeger import running_jaeger  # noqa: E402

#: Limits that never refuse the benchmark's own load.
GENEROUS = {
    "security": {"rateLimit": {"requestsPerMinute": 1_000_000, "tokensPerMinute": 1_000_000_000}},
    "concurrency": {"maxConcurrentRequests": 64, "maxQueuedRequests": 256},
}


@contextlib.contextmanager
def runtime(backend: Backend, tracing: dict[str, Any] | None, name: str) -> Iterator[RuntimeProcess]:
    """A runtime process serving the TestModel agent, traced as `tracing` says (None: no tracing)."""
    with tempfile.TemporaryDirectory(prefix=f"agentry-trace-bench-{name}-") as tmp:
        folder = Path(tmp)
        overrides: dict[str, Any] = dict(GENEROUS)
        if tracing is not None:
            overrides["observability"] = {"tracing": tracing}
        config = write_manifest(folder / "agent.yaml", backend.spec(overrides), name=name)
        with running_runtime(config=config, env=backend.env(), data_dir=folder, ready_timeout=120) as process:
            yield process


async def load(url: str, *, requests: int, concurrency: int) -> float:
    """Requests per second of `requests` POSTs to /v1/run from `concurrency` clients; every answer must be 200."""
    headers = auth()
    remaining = requests

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            answer = await http.post("/v1/run", json={"prompt": "What is Agentry?"}, headers=headers)
            if answer.status_code != 200:
                raise RuntimeError(f"{url} answered {answer.status_code}: {answer.text[:200]}")

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        await client_warmup(http, headers)
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        return requests / (time.perf_counter() - started)


async def client_warmup(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """A few requests first, so connection set-up is not measured."""
    for _ in range(5):
        (await http.post("/v1/run", json={"prompt": "warm up"}, headers=headers)).raise_for_status()


async def measure(urls: dict[str, str], *, requests: int, rounds: int, concurrency: int) -> dict[str, list[float]]:
    """Each runtime's requests per second in every round, the runtimes taken in turn."""
    samples: dict[str, list[float]] = {name: [] for name in urls}
    for round_number in range(rounds):
        order = list(urls) if round_number % 2 == 0 else list(reversed(urls))
        for name in order:
            samples[name].append(await load(urls[name], requests=requests, concurrency=concurrency))
    return samples


def main() -> None:
    """Run the benchmark and write its JSON results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agentry-trace-bench-") as tmp, running_jaeger() as jaeger:
        backend = Backend(data_dir=Path(tmp))
        endpoint = jaeger.otlp_http_endpoint
        with (
            runtime(backend, None, "off") as off,
            runtime(backend, {"endpoint": endpoint, "samplingRatio": 1.0}, "all") as traced_all,
            runtime(backend, {"endpoint": endpoint, "samplingRatio": 0.1}, "tenth") as traced_tenth,
        ):
            urls = {"off": off.url, "sampled100": traced_all.url, "sampled10": traced_tenth.url}
            samples = asyncio.run(
                measure(urls, requests=args.requests, rounds=args.rounds, concurrency=args.concurrency)
            )
            time.sleep(6)  # the batch processors' schedule (5 s) runs out: what was sampled has been sent
            spans = {name: sum(len(t["spans"]) for t in jaeger.traces(name)) for name in ("all", "tenth")}
    median = {name: statistics.median(values) for name, values in samples.items()}
    results = {
        "benchmark": "trace_bench",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {"requests": args.requests, "rounds": args.rounds, "concurrency": args.concurrency},
        "requestsPerSecond": {name: [round(v, 1) for v in values] for name, values in samples.items()},
        "medianRequestsPerSecond": {name: round(v, 1) for name, v in median.items()},
        "ratioToOff": {
            "sampled100": round(median["sampled100"] / median["off"], 3),
            "sampled10": round(median["sampled10"] / median["off"], 3),
        },
        "goal": "sampled100 ratio >= 0.90 (at most 10% cost at 100% sampling)",
        "spansStoredByJaeger": spans,
        "note": "Jaeger's query API returns at most 1000 traces per service, so sampled100's count is a floor",
    }
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
