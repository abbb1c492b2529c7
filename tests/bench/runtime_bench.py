"""Benchmark: POST /v1/run with the whole stack against a bare Starlette endpoint running the same agent.

Both endpoints are served by one uvicorn in a server process (TestModel, JWT auth, rate limits,
metrics, audit trail, SQLite writes on the full path); the load comes from this process over
loopback with bounded concurrency, a bounded request count and a time limit per round. Rounds
alternate bare and full so drift (CPU frequency, page cache) hits both alike.

    .venv/bin/python tests/bench/runtime_bench.py results.json [--requests 1000] [--rounds 5] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from agentry_dev.cluster.network import free_ports

JWT_KEY = "benchmark-signing-key-32-bytes-long!"
SPEC: dict[str, Any] = {
    "agent": {"model": "test", "instructions": "You answer briefly."},
    "concurrency": {"maxConcurrentRequests": 64, "maxQueuedRequests": 1000, "requestTimeoutSeconds": 30},
    "security": {
        "auth": {"mode": "jwt", "secretRef": {"name": "jwt", "key": "key"}},
        "rateLimit": {"requestsPerMinute": 1_000_000, "tokensPerMinute": 1_000_000_000},
        "audit": {"enabled": True},
    },
}


# --- the server process ------------------------------------------------------------------------


def serve(port: int, data_dir: str) -> None:
    """Serve the full runtime and, in the same app, the bare endpoint at /bare/run on one uvicorn."""
    import uvicorn
    from pydantic_ai import Agent
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from agent_runtime.app import build_app
    from agent_runtime.config import RuntimeConfig, parse_document
    from agent_runtime.logs import configure_logging
    from agent_runtime.runtime import Runtime
    from agent_runtime.services.build import build_services

    configure_logging(level="info")
    _, _, spec = parse_document(SPEC)
    config = RuntimeConfig(
        name="bench", namespace="bench", spec=spec, secrets={"spec.security.auth.secretRef": JWT_KEY}
    )
    runtime = Runtime(config=config, services=build_services(config=config, data_dir=data_dir))
    full = build_app(runtime)
    # The same model the runtime runs, in a bare pydantic-ai Agent.
    agent = Agent(runtime.runner.options.model)

    async def bare(request: Request) -> Response:
        body = await request.json()
        result = await agent.run(body["prompt"])
        return JSONResponse({"output": result.output})

    # The bare route goes first in the same app: same uvicorn, same router, none of the envelope.
    full.router.routes.insert(0, Route("/bare/run", bare, methods=["POST"]))
    uvicorn.run(full, host="127.0.0.1", port=port, log_config=None, access_log=False)


# --- the load process ---------------------------------------------------------------------------


@dataclass
class Round:
    """One measured round against one endpoint."""

    target: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]


async def load(
    *, client: httpx.AsyncClient, path: str, headers: dict[str, str], count: int, concurrency: int, limit_s: float
) -> Round:
    """Send up to `count` requests with `concurrency` in flight, stopping early after `limit_s` seconds."""
    latencies: list[float] = []
    errors = 0
    next_index = 0
    deadline = time.perf_counter() + limit_s

    async def worker() -> None:
        nonlocal next_index, errors
        while next_index < count and time.perf_counter() < deadline:
            next_index += 1
            started = time.perf_counter()
            response = await client.post(path, json={"prompt": f"hello {next_index}"}, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Round(
        target=path,
        requests=len(latencies),
        errors=errors,
        seconds=time.perf_counter() - started,
        latencies_ms=latencies,
    )


def summary(rounds: list[Round]) -> dict[str, Any]:
    """Throughput and latency percentiles over all rounds of one target."""
    latencies = sorted(ms for r in rounds for ms in r.latencies_ms)
    total = sum(r.requests for r in rounds)
    seconds = sum(r.seconds for r in rounds)

    def pct(q: float) -> float:
        return round(latencies[max(0, int(q / 100 * len(latencies)) - 1)], 3) if latencies else 0.0

    return {
        "requests": total,
        "errors": sum(r.errors for r in rounds),
        "seconds": round(seconds, 3),
        "rps": round(total / seconds, 1) if seconds else 0.0,
        "p50Ms": pct(50),
        "p99Ms": pct(99),
        "rounds": [{"requests": r.requests, "rps": round(r.requests / r.seconds, 1)} for r in rounds],
    }


async def run_load(*, url: str, count: int, concurrency: int, rounds: int, limit_s: float) -> dict[str, Any]:
    """Warm both endpoints up, then alternate measured rounds."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "agent_image"))
    from agent_runtime.security.tokens import mint_token

    token = mint_token(key=JWT_KEY, subject="bench", roles=["agent_operator"], ttl_seconds=3600)
    targets = {"bare": ("/bare/run", {}), "full": ("/v1/run", {"Authorization": f"Bearer {token}"})}
    results: dict[str, list[Round]] = {"bare": [], "full": []}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        for path, headers in targets.values():
            await load(client=client, path=path, headers=headers, count=200, concurrency=concurrency, limit_s=limit_s)
        for _ in range(rounds):
            for name, (path, headers) in targets.items():
                results[name].append(
                    await load(
                        client=client, path=path, headers=headers, count=count, concurrency=concurrency, limit_s=limit_s
                    )
                )
    bare, full = summary(results["bare"]), summary(results["full"])
    pairs = sorted(
        (f.requests / f.seconds) / (b.requests / b.seconds)
        for b, f in zip(results["bare"], results["full"], strict=True)
    )
    return {
        "bare": bare,
        "full": full,
        "ratio": round(full["rps"] / bare["rps"], 3) if bare["rps"] else 0.0,
        # Each full round against the bare round just before it: robust to load that drifts between rounds.
        "ratioMedianOfRounds": round(pairs[len(pairs) // 2], 3),
    }


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Poll /readyz until the server answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit("server not ready")


def main() -> int:
    """Start the server process, drive the load from this one, write the results as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", help="file to write the JSON results to")
    parser.add_argument("--requests", type=int, default=1000, help="requests per round and target")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per target")
    parser.add_argument("--round-seconds", type=float, default=20.0, help="time limit of one round")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.data_dir)
        return 0
    if not args.output:
        parser.error("the output file is required")
    with tempfile.TemporaryDirectory(prefix="agentry-bench-") as data_dir:
        port = free_ports(1)[0]
        url = f"http://127.0.0.1:{port}"
        log = Path(data_dir) / "server.log"
        with log.open("wb") as out:
            server = subprocess.Popen(
                [sys.executable, __file__, "--serve", str(port), "--data-dir", data_dir],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_ready(url, server)
            result = asyncio.run(
                run_load(
                    url=url,
                    count=args.requests,
                    concurrency=args.concurrency,
                    rounds=args.rounds,
                    limit_s=args.round_seconds,
                )
            )
            audit_lines = sum(1 for line in log.read_text(errors="replace").splitlines() if '"kind":"audit"' in line)
        finally:
            server.terminate()
            server.wait(timeout=60)
    result |= {
        "config": {"requests": args.requests, "concurrency": args.concurrency, "rounds": args.rounds},
        "auditRecordsWritten": audit_lines,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("bare", "full", "ratio", "ratioMedianOfRounds")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
