"""Benchmark: streamed runs and conversations: first-event latency, streams per pod, turn latency by history size.

Real runtime processes (`python -m agent_runtime`, JWT auth, audit trail, SQLite; PostgreSQL for part 3 too)
and stand-in OpenAI-compatible model servers (tests/runtime/servers.py) in processes of their own; the load
comes from this process over loopback, every loop bounded. In one run:

1. firstEvent: the stand-in streams with a fixed delay before each chunk; time to the first content chunk
   calling it directly (`AsyncOpenAI`, stream=True) against time to the first `delta` of `/v1/run/stream`,
   one request at a time, alternating rounds, each stream read to its end.
2. streamsPerPod: maxConcurrentRequests=C and a slow stand-in (long answers); C open streams hold every slot
   (/health inFlight=C), one more is queued, the next refused (429); the runtime's RSS (psutil) idle against
   with C open streams gives the memory per open stream; then the time for all C to finish.
3. conversationTurns: one conversation (TestModel, no tools: 2 messages per turn) grown to 10, 100 and 1000
   stored messages; the latency of several turns at each size, on SQLite and on PostgreSQL.

    .venv/bin/python tests/bench/stream_bench.py results.json [--requests 200] [--streams 32] [--sizes 10,100,1000]
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from openai import AsyncOpenAI

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agentry_dev.cluster.network import free_ports  # noqa: E402
from tests.runtime.harness import Backend, auth  # noqa: E402
from tests.runtime.process import RuntimeProcess, running_runtime, write_manifest  # noqa: E402
from tests.services import running_postgres  # noqa: E402

#: Limits that never refuse the benchmark's own load (part 2 refuses by the queue, not by these).
GENEROUS = {
    "security": {
        "rateLimit": {"requestsPerMinute": 1_000_000, "tokensPerMinute": 1_000_000_000},
        "audit": {"enabled": True},
    },
}
#: Characters of each chunk of the slow stand-in's answer (the prompt is padded to make the answer that long).
CHUNK_CHARS = 8


# --- the stand-in model process -----------------------------------------------------------------


def serve_model(port: int, *, chunk_delay: float, chunks: int) -> None:
    """The stand-in model server on 127.0.0.1:port, streaming in `chunks` pieces `chunk_delay` seconds apart."""
    import uvicorn

    from tests.runtime.servers import chat_completions_app

    app = chat_completions_app([], chunk_delay=chunk_delay, chunks=chunks)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


@contextlib.contextmanager
def model_server(*, chunk_delay: float, chunks: int, log: Path) -> Iterator[str]:
    """A stand-in model process; yields its base URL (without /v1), terminated by PID on exit."""
    port = free_ports(1)[0]
    argv = [sys.executable, __file__, "--serve-model", str(port), "--chunk-delay", str(chunk_delay)]
    with log.open("wb") as out:
        process = subprocess.Popen([*argv, "--chunks", str(chunks)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=60)


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait until the process accepts connections on `port`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"model server exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise SystemExit("model server not listening")


@contextlib.contextmanager
def runtime(backend: Backend, overrides: dict[str, Any], name: str) -> Iterator[RuntimeProcess]:
    """A runtime process serving the harness's base spec with GENEROUS and `overrides`; stopped by PID on exit."""
    folder = backend.data_dir
    folder.mkdir(parents=True, exist_ok=True)
    config = write_manifest(folder / "agent.yaml", backend.spec(GENEROUS | overrides), name=name)
    with running_runtime(config=config, env=backend.env(), data_dir=folder, ready_timeout=120) as process:
        try:
            yield process
        finally:
            process.process.terminate()
            process.wait(timeout=60)


def summary(samples: list[float]) -> dict[str, float]:
    """Count, median, p95 and mean in milliseconds."""
    ordered = sorted(samples)
    return {
        "count": len(ordered),
        "medianMs": round(statistics.median(ordered), 3),
        "p95Ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 3),
        "meanMs": round(statistics.fmean(ordered), 3),
    }


def streaming_agent(model_url: str) -> dict[str, Any]:
    """`spec.agent` of a runtime whose model is the stand-in at `model_url`."""
    return {"model": "openai-chat:streamer", "endpoint": {"baseURL": f"{model_url}/v1"}, "instructions": "Echo."}


# --- part 1: time to the first event ----------------------------------------------------------------


async def first_chunk_direct(client: AsyncOpenAI, prompt: str) -> float:
    """Milliseconds to the first content chunk from the stand-in itself; the stream is read to its end."""
    started = time.perf_counter()
    first = 0.0
    stream = await client.chat.completions.create(
        model="streamer",
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
    )
    async for chunk in stream:
        if not first and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
    if not first:
        raise RuntimeError("the stand-in sent no content")
    return first * 1000


async def read_stream(
    client: httpx.AsyncClient, prompt: str, headers: dict[str, str], opened: asyncio.Event | None = None
) -> tuple[float, float, list[str]]:
    """Milliseconds to the first `delta` and to the end of a `/v1/run/stream`, and the event names it sent."""
    started = time.perf_counter()
    first = 0.0
    names: list[str] = []
    async with client.stream("POST", "/v1/run/stream", json={"prompt": prompt}, headers=headers) as response:
        if response.status_code != 200:
            await response.aread()
            return 0.0, 0.0, [f"http {response.status_code}"]
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                names.append(line.removeprefix("event: "))
                if names[-1] == "delta" and not first:
                    first = time.perf_counter() - started
                    if opened is not None:
                        opened.set()
    return first * 1000, (time.perf_counter() - started) * 1000, names


async def first_events(*, model_url: str, runtime_url: str, requests: int, rounds: int) -> dict[str, Any]:
    """Alternating rounds of direct and through-the-runtime streams, one at a time, after a warm-up of each."""
    direct = AsyncOpenAI(base_url=f"{model_url}/v1", api_key="bench", max_retries=0)
    headers = auth()
    samples: dict[str, list[float]] = {"direct": [], "agentry": []}
    failed = 0
    async with httpx.AsyncClient(base_url=runtime_url, timeout=60) as client:

        async def through(prompt: str) -> float:
            nonlocal failed
            first, _, names = await read_stream(client, prompt, headers)
            if names[-1:] != ["final"] or not first:
                failed += 1
            return first

        for index in range(10):
            await first_chunk_direct(direct, f"warm {index}")
            await through(f"warm {index}")
        failed = 0
        for round_index in range(rounds):
            for index in range(requests // rounds):
                samples["direct"].append(await first_chunk_direct(direct, f"r{round_index} p{index}"))
            for index in range(requests // rounds):
                samples["agentry"].append(await through(f"r{round_index} p{index}"))
    await direct.close()
    result: dict[str, Any] = {name: summary(values) for name, values in samples.items()}
    base, full = result["direct"]["medianMs"], result["agentry"]["medianMs"]
    return result | {
        "addedMedianMs": round(full - base, 3),
        "addedP95Ms": round(result["agentry"]["p95Ms"] - result["direct"]["p95Ms"], 3),
        "ratio": round(full / base, 3),
        "streamsWithoutFinal": failed,
    }


# --- part 2: streams held per pod -------------------------------------------------------------------


def rss(pid: int, samples: int = 5) -> int:
    """The median of a few RSS readings of the process, 0.1 s apart."""
    process = psutil.Process(pid)
    readings = []
    for _ in range(samples):
        readings.append(process.memory_info().rss)
        time.sleep(0.1)
    return int(statistics.median(readings))


def long_prompt(index: int, chunks: int) -> str:
    """A prompt whose echo ("echo: " + prompt) the slow stand-in sends in exactly `chunks` pieces."""
    return f"stream {index} ".ljust(chunks * CHUNK_CHARS - len("echo: "), "x")


async def wait_health(client: httpx.AsyncClient, *, in_flight: int, queued: int, limit_s: float) -> dict[str, Any]:
    """Poll /health until it reports this load; the last report either way."""
    deadline = time.monotonic() + limit_s
    while True:
        report: dict[str, Any] = (await client.get("/health")).json()
        if (report["inFlight"], report["queued"]) == (in_flight, queued) or time.monotonic() > deadline:
            return report
        await asyncio.sleep(0.05)


async def hold_streams(*, process: RuntimeProcess, streams: int, chunks: int, waves: int) -> dict[str, Any]:
    """`waves` times: C open streams, one queued, one refused; RSS idle and with C open; time until all C end."""
    headers = auth()
    limits = httpx.Limits(max_connections=streams + 4, max_keepalive_connections=streams + 4)
    async with httpx.AsyncClient(base_url=process.url, timeout=300, limits=limits) as client:
        for index in range(2):  # lazy imports and the first model connection, on short answers
            await read_stream(client, f"w{index}", headers)
        return {
            "waves": [
                await one_wave(client=client, pid=process.process.pid, streams=streams, chunks=chunks, headers=headers)
                for _ in range(waves)
            ]
        }


async def one_wave(
    *, client: httpx.AsyncClient, pid: int, streams: int, chunks: int, headers: dict[str, str]
) -> dict[str, Any]:
    """One wave of C streams (plus one queued and one refused), measured."""
    idle = await asyncio.to_thread(rss, pid)
    opened = [asyncio.Event() for _ in range(streams)]
    started = time.perf_counter()
    tasks = [
        asyncio.create_task(read_stream(client, long_prompt(n, chunks), headers, opened[n])) for n in range(streams)
    ]
    async with asyncio.timeout(120):
        await asyncio.gather(*(event.wait() for event in opened))
    all_open_ms = (time.perf_counter() - started) * 1000
    held = await wait_health(client, in_flight=streams, queued=0, limit_s=5)
    loaded = await asyncio.to_thread(rss, pid)
    # A short answer: what matters is that it waits for a slot and then runs, not its length.
    queued_task = asyncio.create_task(read_stream(client, "queued", headers))
    queued = await wait_health(client, in_flight=streams, queued=1, limit_s=5)
    refused = await client.post("/v1/run/stream", json={"prompt": "one too many"}, headers=headers)
    results = await asyncio.gather(*tasks)
    all_done_ms = (time.perf_counter() - started) * 1000
    _, queued_total_ms, queued_names = await queued_task
    after = await asyncio.to_thread(rss, pid)
    return {
        "streams": streams,
        "allOpenMs": round(all_open_ms, 1),
        "inFlightWithAllOpen": held["inFlight"],
        "queuedWithOneMore": queued["queued"],
        "refusedStatus": refused.status_code,
        "refusedType": refused.json().get("error", {}).get("type"),
        "allFinishedMs": round(all_done_ms, 1),
        "streamMs": summary([total for _, total, _ in results]),
        "streamsEndingInFinal": sum(names[-1:] == ["final"] for _, _, names in results),
        "queuedStreamMs": round(queued_total_ms, 1),
        "queuedStreamEndedInFinal": queued_names[-1:] == ["final"],
        "rssIdleMiB": round(idle / 2**20, 2),
        "rssWithStreamsOpenMiB": round(loaded / 2**20, 2),
        "rssAfterMiB": round(after / 2**20, 2),
        "rssPerOpenStreamKiB": round((loaded - idle) / streams / 1024, 1),
    }


# --- part 3: conversation turns as the history grows ----------------------------------------------


@dataclass
class Conversation:
    """One conversation driven turn by turn, with the latency of each turn and the history it started from."""

    client: httpx.AsyncClient
    headers: dict[str, str]
    conversation_id: str | None = None
    stored: int = 0

    async def turn(self) -> float:
        """One turn; its milliseconds. Each turn stores 2 messages (the prompt, the TestModel's answer)."""
        body: dict[str, Any] = {"prompt": f"turn {self.stored // 2}"}
        if self.conversation_id is not None:
            body["conversationId"] = self.conversation_id
        started = time.perf_counter()
        response = await self.client.post("/v1/run", json=body, headers=self.headers)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"turn failed with {response.status_code}: {response.text[:500]}")
        self.conversation_id = response.json()["conversationId"]
        self.stored += 2
        return elapsed

    async def history(self) -> tuple[int, int]:
        """The stored history: messages and bytes of its JSON."""
        response = await self.client.get(f"/v1/conversations/{self.conversation_id}", headers=self.headers)
        response.raise_for_status()
        messages = response.json()["messages"]
        return len(messages), len(json.dumps(messages).encode())


async def grow_conversation(*, url: str, sizes: list[int], turns_per_size: int) -> dict[str, Any]:
    """Turns until the history holds each size, then `turns_per_size` measured turns there."""
    by_size: dict[str, Any] = {}
    fill: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        headers = auth()
        # The same turn without a conversationId: a new conversation each time, no history to load.
        fresh = [await Conversation(client=client, headers=headers).turn() for _ in range(turns_per_size)]
        conversation = Conversation(client=client, headers=headers)
        for size in sizes:
            while conversation.stored < size:
                fill.append(await conversation.turn())
            messages, size_bytes = await conversation.history()
            measured = [await conversation.turn() for _ in range(turns_per_size)]
            by_size[str(size)] = summary(measured) | {"storedMessages": messages, "storedBytes": size_bytes}
        final_messages, final_bytes = await conversation.history()
    first, last = by_size[str(sizes[0])], by_size[str(sizes[-1])]
    slope = (last["medianMs"] - first["medianMs"]) / max(1, sizes[-1] - sizes[0])
    return {
        "newConversation": summary(fresh),
        "bySize": by_size,
        "turns": len(fill) + turns_per_size * len(sizes),
        "fillTurnsMedianMs": round(statistics.median(fill), 3) if fill else 0.0,
        # What each stored message adds to a turn, from the smallest size to the largest.
        "addedMsPerStoredMessage": round(slope, 4),
        "finalStoredMessages": final_messages,
        "finalStoredBytes": final_bytes,
    }


def conversation_spec(sizes: list[int], turns_per_size: int) -> dict[str, Any]:
    """TestModel with no tools, and bounds above the largest history the run reaches."""
    max_messages = max(2000, max(sizes) + 2 * turns_per_size + 2)
    return {
        "agent": {"model": "test", "instructions": "You answer briefly.", "toolsets": []},
        "conversations": {"maxMessages": min(max_messages, 10_000), "maxBytes": 64 * 1024 * 1024},
        "concurrency": {"maxConcurrentRequests": 4, "maxQueuedRequests": 8, "requestTimeoutSeconds": 30},
    }


# --- the run ----------------------------------------------------------------------------------------


def part_first_event(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Part 1 with its own stand-in and runtime."""
    with model_server(chunk_delay=args.chunk_delay, chunks=args.chunks, log=folder / "model-fast.log") as model:
        backend = Backend(data_dir=folder / "first-event")
        overrides = {
            "agent": streaming_agent(model),
            "concurrency": {"maxConcurrentRequests": 4, "maxQueuedRequests": 8, "requestTimeoutSeconds": 30},
        }
        with runtime(backend, overrides, "first-event") as process:
            result = asyncio.run(
                first_events(model_url=model, runtime_url=process.url, requests=args.requests, rounds=args.rounds)
            )
        audited = sum('"kind":"audit"' in line for line in process.output().splitlines())
    return result | {"auditRecordsWritten": audited}


def part_streams(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Part 2 with its own slow stand-in and a runtime at maxConcurrentRequests=C, maxQueuedRequests=1."""
    log = folder / "model-slow.log"
    with model_server(chunk_delay=args.slow_chunk_delay, chunks=args.slow_chunks, log=log) as model:
        backend = Backend(data_dir=folder / "streams")
        overrides = {
            "agent": streaming_agent(model),
            "concurrency": {
                "maxConcurrentRequests": args.streams,
                "maxQueuedRequests": 1,
                "requestTimeoutSeconds": 300,
            },
        }
        with runtime(backend, overrides, "streams") as process:
            return asyncio.run(
                hold_streams(process=process, streams=args.streams, chunks=args.slow_chunks, waves=args.waves)
            )


def part_conversations(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Part 3 on SQLite, then on a PostgreSQL started like the tests' (tests/services.py)."""
    spec = conversation_spec(args.sizes, args.turns_per_size)
    results: dict[str, Any] = {}
    with runtime(Backend(data_dir=folder / "conv-sqlite"), spec, "conv-sqlite") as process:
        results["sqlite"] = asyncio.run(
            grow_conversation(url=process.url, sizes=args.sizes, turns_per_size=args.turns_per_size)
        )
    if args.no_postgres:
        return results
    with running_postgres() as server:
        backend = Backend(data_dir=folder / "conv-postgres", postgres_url=server.create_database())
        with runtime(backend, spec, "conv-postgres") as process:
            results["postgres"] = asyncio.run(
                grow_conversation(url=process.url, sizes=args.sizes, turns_per_size=args.turns_per_size)
            )
    return results


def parse_args() -> argparse.Namespace:
    """The command line; the sizes of every bounded loop."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("output", nargs="?", help="file to write the JSON results to")
    parser.add_argument("--requests", type=int, default=200, help="streams of each way in part 1 (at most 5000)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds in part 1")
    parser.add_argument("--chunk-delay", type=float, default=0.05, help="seconds before each chunk in part 1")
    parser.add_argument("--chunks", type=int, default=2, help="chunks of each answer in part 1")
    parser.add_argument("--streams", type=int, default=32, help="C: maxConcurrentRequests and streams held (part 2)")
    parser.add_argument("--slow-chunk-delay", type=float, default=0.25, help="seconds between chunks in part 2")
    parser.add_argument("--slow-chunks", type=int, default=40, help="chunks of each answer in part 2")
    parser.add_argument("--waves", type=int, default=2, help="waves of C streams in part 2")
    parser.add_argument("--sizes", default="10,100,1000", help="history sizes (messages) of part 3, at most 9000")
    parser.add_argument("--turns-per-size", type=int, default=7, help="measured turns at each size (part 3)")
    parser.add_argument("--no-postgres", action="store_true", help="part 3 on SQLite only")
    parser.add_argument("--serve-model", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_model:
        return args
    if not args.output:
        parser.error("the output file is required")
    args.requests = max(args.rounds, min(args.requests, 5000))
    args.sizes = sorted(int(size) for size in args.sizes.split(","))
    if not args.sizes or args.sizes[0] < 2 or args.sizes[-1] > 9000 or any(size % 2 for size in args.sizes):
        parser.error("--sizes: even message counts between 2 and 9000")
    return args


def main() -> int:
    """Run the three parts, each with its own processes, and write one JSON file."""
    args = parse_args()
    if args.serve_model:
        serve_model(args.serve_model, chunk_delay=args.chunk_delay, chunks=args.chunks)
        return 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="agentry-stream-bench-") as folder:
        result: dict[str, Any] = {
            "firstEvent": part_first_event(Path(folder), args),
            "streamsPerPod": part_streams(Path(folder), args),
            "conversationTurns": part_conversations(Path(folder), args),
        }
    result["config"] = {
        key: getattr(args, key)
        for key in ("requests", "rounds", "chunk_delay", "chunks", "streams", "slow_chunk_delay", "slow_chunks")
    } | {"waves": args.waves, "sizes": args.sizes, "turnsPerSize": args.turns_per_size}
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
