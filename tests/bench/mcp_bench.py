"""Benchmark: the latency Agentry adds to an MCP tool call, against calling the FastMCP server directly.

A FastMCP server (tests/runtime/mcp_servers.py, streamable HTTP, the `add` tool) runs in a server process;
this process calls it, one call at a time, four ways, alternating in rounds so drift hits all alike:
- direct: a connected FastMCP `Client.call_tool`, the floor;
- agentry: the toolset a run gets from `McpToolsets.for_run` (timeout bound, allow-list, prefix, a Secret
  header), its `call_tool` as pydantic-ai's agent calls it, on the shared session;
- agentryRun: per iteration what a run with one tool call costs of the MCP part: `for_run`, `get_tools`, the call;
- forwardedRun: the same for a toolset with forwardBearerToken, which opens a session of its own per run.

    .venv/bin/python tests/bench/mcp_bench.py results.json [--calls 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastmcp.client import Client
from fastmcp.client.transports import StreamableHttpTransport
from pydantic_ai import RunContext
from pydantic_ai.models.test import TestModel
from pydantic_ai.usage import RunUsage

from agent_runtime.config import RuntimeConfig, parse_document
from agent_runtime.mcp import McpToolsets
from agentry_dev.cluster.network import free_ports

ARGS = {"a": 20, "b": 22}
KEY_PATH = "spec.agent.toolsets[0].mcp.headers[0].secretRef"


def serve(port: int) -> None:
    """The server process: the test MCP server on 127.0.0.1:port."""
    import uvicorn

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.runtime.mcp_servers import Seen, mcp_app

    uvicorn.run(mcp_app(Seen()), host="127.0.0.1", port=port, log_level="warning")


def config(url: str) -> RuntimeConfig:
    """A spec with two MCP toolsets on the server: shared (header, allow-list, prefix) and forwarding."""
    header = {"name": "X-Api-Key", "secretRef": {"name": "mcp", "key": "key"}}
    shared = {"url": url, "headers": [header], "allowedTools": ["add"], "toolPrefix": "t"}
    spec = {
        "agent": {
            "model": "test",
            "toolsets": [
                {"name": "shared", "mcp": shared},
                {"name": "forwarded", "mcp": {"url": url, "forwardBearerToken": True}},
            ],
        },
        "security": {"auth": {"mode": "none"}},
    }
    _, _, parsed = parse_document(spec)
    return RuntimeConfig(name="bench", namespace="bench", spec=parsed, secrets={KEY_PATH: "bench-key"})


async def timed(step: Callable[[], Awaitable[Any]], count: int) -> list[float]:
    """Milliseconds of each of `count` sequential awaits of `step`."""
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await step()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def measure(url: str, *, calls: int, rounds: int) -> dict[str, list[float]]:
    """Latencies of each way, `calls` in all, in `rounds` alternating rounds after a warm-up."""
    ctx = RunContext[None](deps=None, model=TestModel(), usage=RunUsage())
    shared_only = McpToolsets.from_config(config(url))
    forwarded = McpToolsets(shared_only.servers[1:])
    shared_only.servers = shared_only.servers[:1]
    await shared_only.start()
    async with Client(StreamableHttpTransport(url)) as client, shared_only.for_run(bearer_token=None) as [toolset]:
        tools = await toolset.get_tools(ctx)

        async def direct() -> None:
            await client.call_tool("add", ARGS)

        async def agentry() -> None:
            await toolset.call_tool("t_add", ARGS, ctx, tools["t_add"])

        async def run_of(toolsets: McpToolsets, name: str) -> None:
            async with toolsets.for_run(bearer_token="caller-token") as [run_toolset]:
                run_tools = await run_toolset.get_tools(ctx)
                await run_toolset.call_tool(name, ARGS, ctx, run_tools[name])

        ways: dict[str, Callable[[], Awaitable[Any]]] = {
            "direct": direct,
            "agentry": agentry,
            "agentryRun": lambda: run_of(shared_only, "t_add"),
            "forwardedRun": lambda: run_of(forwarded, "add"),
        }
        for step in ways.values():
            await timed(step, 20)
        results: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(rounds):
            for name, step in ways.items():
                results[name] += await timed(step, calls // rounds)
    await shared_only.close()
    return results


def summary(samples: list[float]) -> dict[str, float]:
    """Median, p95 and mean in milliseconds."""
    ordered = sorted(samples)
    return {
        "calls": len(ordered),
        "medianMs": round(statistics.median(ordered), 3),
        "p95Ms": round(ordered[int(len(ordered) * 0.95) - 1], 3),
        "meanMs": round(statistics.fmean(ordered), 3),
    }


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait until the server process accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise SystemExit("server not listening")


def main() -> int:
    """Start the server process, call it from this one, write the results as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", help="file to write the JSON results to")
    parser.add_argument("--calls", type=int, default=200, help="calls of each way (at most 10000)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    if not args.output:
        parser.error("the output file is required")
    calls = min(args.calls, 10_000)
    port = free_ports(1)[0]
    with tempfile.TemporaryDirectory(prefix="agentry-mcp-bench-") as folder:
        log = Path(folder) / "server.log"
        with log.open("wb") as out:
            server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], stdout=out, stderr=out)
        try:
            wait_listening(port, server)
            samples = asyncio.run(measure(f"http://127.0.0.1:{port}/mcp", calls=calls, rounds=args.rounds))
        finally:
            server.terminate()
            server.wait(timeout=60)
    result: dict[str, Any] = {name: summary(values) for name, values in samples.items()}
    direct = result["direct"]["medianMs"]
    result["ratio"] = round(result["agentry"]["medianMs"] / direct, 3)
    result["addedMedianMs"] = round(result["agentry"]["medianMs"] - direct, 3)
    result["config"] = {"calls": calls, "rounds": args.rounds, "transport": "streamable-http"}
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("direct", "agentry", "ratio", "addedMedianMs")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
