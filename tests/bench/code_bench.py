"""Benchmark: the same agent served in code mode (the user's Agent, imported) and declaratively, ratio in one run.

Two runtime processes serve one agent each, with the same spec apart from `spec.agent` (TestModel, JWT auth,
rate limits, audit trail, SQLite): one declarative, one `code: {entrypoint: tests.bench.code_bench:agent}`,
a PydanticAI Agent with the same instructions and no tools. Rounds alternate between them over loopback,
with bounded concurrency, request count and time per round; each process's RSS is read from /health afterwards.

    .venv/bin/python tests/bench/code_bench.py results.json [--requests 1000] [--rounds 5] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic_ai import Agent

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agent_runtime.sdk import AgentryDeps  # noqa: E402
from agent_runtime.security.tokens import mint_token  # noqa: E402
from agentry_dev.cluster.network import free_ports  # noqa: E402
from tests.bench.runtime_bench import JWT_KEY, SPEC, Round, load, summary, wait_ready  # noqa: E402

#: The user's agent of the code-mode process: the declarative agent's instructions, nothing else.
agent: Agent[AgentryDeps, str] = Agent(deps_type=AgentryDeps, instructions=SPEC["agent"]["instructions"])

MODES: dict[str, dict[str, Any]] = {
    "declarative": {**SPEC["agent"], "toolsets": []},
    "code": {"model": "test", "code": {"entrypoint": "tests.bench.code_bench:agent"}},
}


def manifest(mode: str) -> dict[str, Any]:
    """The AgentDeployment each process serves."""
    spec = copy.deepcopy(SPEC) | {"agent": MODES[mode]}
    if mode == "code":
        spec["pod"] = {"image": "localhost/bench/code-agent:1"}
    return {"apiVersion": "agentry.dev/v1alpha1", "kind": "AgentDeployment", "metadata": {"name": mode}, "spec": spec}


def start(mode: str, data_dir: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """A runtime process serving `mode`, its log in data_dir."""
    port = free_ports(1)[0]
    folder = data_dir / mode
    folder.mkdir()
    config = folder / "agent.yaml"
    config.write_text(yaml.safe_dump(manifest(mode)))
    env = {
        **os.environ,
        "AGENTRY_SECRET_JWT__KEY": JWT_KEY,
        "AGENTRY_DATA_DIR": str(folder),
        "PYTHONPATH": str(ROOT),
    }
    with (folder / "server.log").open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent_runtime",
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return f"http://127.0.0.1:{port}", process


async def run_load(
    *, urls: dict[str, str], count: int, concurrency: int, rounds: int, limit_s: float
) -> dict[str, Any]:
    """Warm both up, alternate measured rounds, then read each process's memory."""
    token = mint_token(key=JWT_KEY, subject="bench", roles=["agent_operator"], ttl_seconds=3600)
    headers = {"Authorization": f"Bearer {token}"}
    results: dict[str, list[Round]] = {mode: [] for mode in urls}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def one_round(mode: str, count: int) -> Round:
        # A client per round: the other mode's round lasts longer than uvicorn keeps an idle connection open,
        # and a connection it closed meanwhile would fail the next request (ReadError), not measure anything.
        async with httpx.AsyncClient(base_url=urls[mode], limits=limits, timeout=30) as client:
            return await load(
                client=client, path="/v1/run", headers=headers, count=count, concurrency=concurrency, limit_s=limit_s
            )

    for mode in urls:
        await one_round(mode, 200)
    for _ in range(rounds):
        for mode in urls:
            results[mode].append(await one_round(mode, count))
    memory = {}
    for mode, url in urls.items():
        memory[mode] = httpx.get(f"{url}/health", timeout=10).json()["memory"]["rssBytes"]
    pairs = sorted(
        (c.requests / c.seconds) / (d.requests / d.seconds)
        for d, c in zip(results["declarative"], results["code"], strict=True)
    )
    declarative, code = summary(results["declarative"]), summary(results["code"])
    return {
        "declarative": declarative | {"rssMiB": round(memory["declarative"] / 2**20, 1)},
        "code": code | {"rssMiB": round(memory["code"] / 2**20, 1)},
        "ratio": round(code["rps"] / declarative["rps"], 3) if declarative["rps"] else 0.0,
        "ratioMedianOfRounds": round(pairs[len(pairs) // 2], 3),
    }


def main() -> int:
    """Start both processes, drive the load, write the results as JSON."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("output", help="file to write the JSON results to")
    parser.add_argument("--requests", type=int, default=1000, help="requests per round and mode")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per mode")
    parser.add_argument("--round-seconds", type=float, default=20.0, help="time limit of one round")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agentry-code-bench-") as folder:
        servers = {mode: start(mode, Path(folder)) for mode in MODES}
        try:
            for url, process in servers.values():
                wait_ready(url, process)
            result = asyncio.run(
                run_load(
                    urls={mode: url for mode, (url, _) in servers.items()},
                    count=args.requests,
                    concurrency=args.concurrency,
                    rounds=args.rounds,
                    limit_s=args.round_seconds,
                )
            )
        finally:
            for _, process in servers.values():
                process.terminate()
                process.wait(timeout=60)
    result |= {
        "config": {"requests": args.requests, "concurrency": args.concurrency, "rounds": args.rounds},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("declarative", "code", "ratio", "ratioMedianOfRounds")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
