"""Benchmark: what tracing costs the runtime's throughput, at 100% and 10% sampling, against tracing off.

Three real runtime processes (`python -m agent_runtime`, JWT auth, audit trail, SQLite, TestModel) serve the
same agent: one without tracing, one exporting every trace and one exporting a tenth, both over OTLP/HTTP to a
real Jaeger (built from its Go module, tests/support/jaeger.py). The load comes from this process over loopback:
`--concurrency` clients posting /v1/run, `--requests` per round, the three runtimes in turn within each of
`--rounds` rounds (so drift on the machine hits all three alike), every loop bounded. The result is each
runtime's median requests per second and the traced/untraced ratios, measured in this one run, with the number
of spans Jaeger stored as a check that the traced runtimes really exported. Each runtime's CPU per request (and
Jaeger's) says where the cost goes; last, the same TestModel run in this process with and without pydantic-ai's
Instrumentation capability (spans made and dropped) gives the part of it that is pydantic-ai's own, and the
spans of such runs encoded by the SDK's OTLP encoder and by the runtime's (otlp.py) give each one's µs per span.

With `--model endpoint` the agent's model is the real model path instead: pydantic-ai's OpenAI client against an
OpenAI-compatible stand-in in its own process (tests/runtime/servers.py, answering at once), so each traced
request also has the model call's CLIENT span and passes the trace on to it.

    .venv/bin/python tests/bench/trace_bench.py results.json [--requests 300] [--rounds 5] [--concurrency 8]
        [--model test|endpoint]
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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import psutil
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic_ai import Agent
from pydantic_ai.capabilities.instrumentation import Instrumentation
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.models.test import TestModel

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agent_runtime.otlp import encode_request  # noqa: E402
from tests.bench.stream_bench import model_server, streaming_agent  # noqa: E402
from tests.runtime.harness import Backend, auth  # noqa: E402
from tests.runtime.process import RuntimeProcess, running_runtime, write_manifest  # noqa: E402
from tests.support.jaeger import running_jaeger  # noqa: E402

#: Limits that never refuse the benchmark's own load.
GENEROUS = {
    "security": {"rateLimit": {"requestsPerMinute": 1_000_000, "tokensPerMinute": 1_000_000_000}},
    "concurrency": {"maxConcurrentRequests": 64, "maxQueuedRequests": 256},
}


@contextlib.contextmanager
def runtime(
    backend: Backend, tracing: dict[str, Any] | None, name: str, agent: dict[str, Any] | None = None
) -> Iterator[RuntimeProcess]:
    """A runtime process serving `agent` (None: the TestModel agent), traced as `tracing` says (None: untraced)."""
    with tempfile.TemporaryDirectory(prefix=f"agentry-trace-bench-{name}-") as tmp:
        folder = Path(tmp)
        overrides: dict[str, Any] = dict(GENEROUS)
        if tracing is not None:
            overrides["observability"] = {"tracing": tracing}
        config = write_manifest(folder / "agent.yaml", backend.spec(overrides, agent=agent), name=name)
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


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def measure(
    runtimes: dict[str, RuntimeProcess], *, jaeger_pid: int, requests: int, rounds: int, concurrency: int
) -> tuple[dict[str, list[float]], dict[str, float], dict[str, float]]:
    """Each runtime's requests per second in every round (the runtimes taken in turn), and CPU per request.

    CPU per request is the runtime process's own (ms), and Jaeger's while that runtime was loaded (ms), since
    on this machine the collector shares the cores with the runtime it receives from.
    """
    samples: dict[str, list[float]] = {name: [] for name in runtimes}
    runtime_cpu = dict.fromkeys(runtimes, 0.0)
    jaeger_cpu = dict.fromkeys(runtimes, 0.0)
    for round_number in range(rounds):
        order = list(runtimes) if round_number % 2 == 0 else list(reversed(runtimes))
        for name in order:
            pid = runtimes[name].process.pid
            before, jaeger_before = cpu_seconds(pid), cpu_seconds(jaeger_pid)
            samples[name].append(await load(runtimes[name].url, requests=requests, concurrency=concurrency))
            runtime_cpu[name] += cpu_seconds(pid) - before
            jaeger_cpu[name] += cpu_seconds(jaeger_pid) - jaeger_before
    served = (requests + 5) * rounds  # with each load's warm-up requests
    per_request = {name: round(1000 * cpu / served, 3) for name, cpu in runtime_cpu.items()}
    jaeger_per_request = {name: round(1000 * cpu / served, 3) for name, cpu in jaeger_cpu.items()}
    return samples, per_request, jaeger_per_request


class Dropped(SpanExporter):
    """An exporter that sends nothing, so only the making of spans is measured."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Drop the batch."""
        return SpanExportResult.SUCCESS


def instrumentation(exporter: SpanExporter) -> InstrumentationSettings:
    """pydantic-ai's instrumentation as the runtime sets it (tracing.py), its spans handed to `exporter` as they end."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return InstrumentationSettings(
        tracer_provider=provider,
        include_content=False,
        include_binary_content=False,
        include_model_request_parameters=False,
    )


async def instrumentation_cost(runs: int = 1500, repeats: int = 3) -> dict[str, float]:
    """CPU microseconds of one TestModel run in this process, with and without pydantic-ai's Instrumentation.

    Part of the traced runtime's cost that is pydantic-ai's own: the same agent run, spans recorded and dropped.
    """
    agent: Agent[None, str] = Agent(TestModel(call_tools=[]), output_type=str)
    settings = instrumentation(Dropped())
    variants: dict[str, list[Any]] = {"plain": [], "instrumented": [Instrumentation(settings=settings)]}
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, capabilities in variants.items():
            for _ in range(50):
                await agent.run("What is Agentry?", capabilities=capabilities)
            started = time.process_time()
            for _ in range(runs):
                await agent.run("What is Agentry?", capabilities=capabilities)
            samples[name].append((time.process_time() - started) / runs * 1e6)
    return {name: round(statistics.median(values), 1) for name, values in samples.items()}


async def encoding_cost(runs: int = 500, repeats: int = 5, batch: int = 512) -> dict[str, float]:
    """CPU µs per span of encoding the spans of `runs` instrumented TestModel runs (with a tool call) for export.

    In batches of `batch` (the batch processor's default), by the SDK's encoder and by otlp.py's; the bytes must
    be the same.
    """
    recorded = InMemorySpanExporter()
    settings = instrumentation(recorded)
    agent: Agent[None, str] = Agent(TestModel(), output_type=str)

    @agent.tool_plain
    def lookup(query: str) -> str:
        """Look something up."""
        return f"results for {query}"

    for _ in range(runs):
        await agent.run("What is Agentry?", capabilities=[Instrumentation(settings=settings)])
    spans = list(recorded.get_finished_spans())
    batches = [spans[i : i + batch] for i in range(0, len(spans), batch)]
    if any(encode_request(b) != encode_spans(b).SerializePartialToString() for b in batches):
        raise RuntimeError("otlp.py's bytes differ from the SDK encoder's")
    encoders = {
        "sdk": lambda b: encode_spans(b).SerializePartialToString(),
        "runtime": encode_request,
    }
    samples: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(repeats):
        for name, encode in encoders.items():
            started = time.process_time()
            for chunk in batches:
                encode(chunk)
            samples[name].append((time.process_time() - started) / len(spans) * 1e6)
    median = {name: round(statistics.median(values), 1) for name, values in samples.items()}
    return {**median, "spans": len(spans), "ratio": round(median["runtime"] / median["sdk"], 3)}


def main() -> None:
    """Run the benchmark and write its JSON results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--model", choices=["test", "endpoint"], default="test")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="agentry-trace-bench-"))
        jaeger = stack.enter_context(running_jaeger())
        agent = None
        if args.model == "endpoint":
            model_url = stack.enter_context(model_server(chunk_delay=0.0, chunks=1, log=Path(tmp) / "model.log"))
            agent = streaming_agent(model_url)
        backend = Backend(data_dir=Path(tmp))
        endpoint = jaeger.otlp_http_endpoint
        with (
            runtime(backend, None, "off", agent) as off,
            runtime(backend, {"endpoint": endpoint, "samplingRatio": 1.0}, "all", agent) as traced_all,
            runtime(backend, {"endpoint": endpoint, "samplingRatio": 0.1}, "tenth", agent) as traced_tenth,
        ):
            runtimes = {"off": off, "sampled100": traced_all, "sampled10": traced_tenth}
            samples, cpu, jaeger_cpu = asyncio.run(
                measure(
                    runtimes,
                    jaeger_pid=jaeger.pid,
                    requests=args.requests,
                    rounds=args.rounds,
                    concurrency=args.concurrency,
                )
            )
            time.sleep(6)  # the batch processors' schedule (5 s) runs out: what was sampled has been sent
            spans = {name: sum(len(t["spans"]) for t in jaeger.traces(name)) for name in ("all", "tenth")}
    median = {name: statistics.median(values) for name, values in samples.items()}
    pydantic_ai_cost = asyncio.run(instrumentation_cost())
    encoding = asyncio.run(encoding_cost())
    results = {
        "benchmark": "trace_bench",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {
            "requests": args.requests,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "model": "TestModel" if args.model == "test" else "OpenAI-compatible stand-in (pydantic-ai's client)",
        },
        "requestsPerSecond": {name: [round(v, 1) for v in values] for name, values in samples.items()},
        "medianRequestsPerSecond": {name: round(v, 1) for name, v in median.items()},
        "ratioToOff": {
            "sampled100": round(median["sampled100"] / median["off"], 3),
            "sampled10": round(median["sampled10"] / median["off"], 3),
        },
        "runtimeCpuMsPerRequest": cpu,
        "jaegerCpuMsPerRequest": jaeger_cpu,
        "cpuRatioToOff": {name: round(cpu[name] / cpu["off"], 3) for name in ("sampled100", "sampled10")},
        "pydanticAiRunCpuUs": pydantic_ai_cost,
        "otlpEncodingCpuUsPerSpan": encoding,
        "goal": "sampled100 ratio >= 0.90 (at most 10% cost at 100% sampling)",
        "spansStoredByJaeger": spans,
        "note": "Jaeger's query API returns at most 1000 traces per service, so sampled100's count is a floor",
    }
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
