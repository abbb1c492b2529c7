"""Benchmark: what the token and cost budgets (spec.security.budgets) cost the runtime's throughput.

Four real runtime processes (`python -m agent_runtime`, JWT auth, audit trail, SQLite, TestModel with
spec.agent.pricing, limits that refuse nothing) serve the same agent under distinct names, so their Redis keys
never mix:

- `redis-no-budgets`: a real Redis as spec.services.cache (started here, stopped after), no budgets; the
  ledger still keeps the agent's spend in Redis (one charge script per model response),
- `redis-budgets`: the same Redis, with budgets per principal and per agent that are never reached (a read of
  both hashes before each run, and the principal's hash in each charge),
- `local-budgets`: no cache (the ledger in the process), the same budgets,
- `local-no-budgets`: no cache, no budgets: the baseline.

The load comes from this process over loopback: `--concurrency` clients posting /v1/run, `--requests` per round,
the runtimes in turn within each of `--rounds` rounds (the order reversed every other round, so drift on the
machine hits all alike), every loop bounded. The result is each runtime's median requests per second and the
ratios budgets/no budgets (with Redis and without) and Redis/local without budgets, all measured in this one run;
each runtime's CPU per request (and Redis's while it was loaded) says where the cost goes. After the load each
runtime's /health `spend` must show the tokens it counted (and the Redis hashes the same), a check that the
ledger really charged. Last, the raw latency of the ledger's operations on the same Redis, from this process:
sequential `RedisLedger.charge` (agent only, and agent and principal) and `Budgets.check`, against a PING.

    .venv/bin/python tests/bench/budget_bench.py results.json [--requests 300] [--rounds 5] [--concurrency 8]
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
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis
import redis.asyncio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agent_runtime.security.budgets import Budgets, Policy, Spent, principal_hasher  # noqa: E402
from agent_runtime.security.budgets_redis import RedisLedger  # noqa: E402
from agentry_api.v1alpha1 import BudgetsSpec  # noqa: E402
from tests.runtime.harness import Backend, auth, merge  # noqa: E402
from tests.runtime.process import RuntimeProcess, running_runtime, write_manifest  # noqa: E402
from tests.services import running_redis  # noqa: E402

#: Limits that never refuse the benchmark's own load.
GENEROUS: dict[str, Any] = {
    "security": {"rateLimit": {"requestsPerMinute": 1_000_000, "tokensPerMinute": 1_000_000_000}},
    "concurrency": {"maxConcurrentRequests": 64, "maxQueuedRequests": 256},
}
#: Every variant prices its tokens, so cost is computed (and charged to the ledger) in all four alike.
PRICING = {"inputPerMillionTokens": 100, "outputPerMillionTokens": 400, "currency": "USD"}
#: Budgets so large that nothing is refused: tokens per caller and per agent, and a cost per agent.
BUDGETS: dict[str, Any] = {"perPrincipal": {"tokens": 10**12}, "perAgent": {"tokens": 10**12, "cost": 10**8}}
#: The manifests' namespace (tests/runtime/process.py), part of each agent's Redis prefix.
NAMESPACE = "test"
#: Warm-up requests before each load (not timed, but served: counted in CPU per request).
WARMUP = 5
PROMPT = "What is Agentry?"


@dataclass(frozen=True)
class Variant:
    """One runtime of the comparison: with the Redis cache or not, with budgets or not."""

    name: str
    redis: bool
    budgets: bool


VARIANTS = (
    Variant("redis-no-budgets", redis=True, budgets=False),
    Variant("redis-budgets", redis=True, budgets=True),
    Variant("local-budgets", redis=False, budgets=True),
    Variant("local-no-budgets", redis=False, budgets=False),
)


def overrides_for(variant: Variant) -> dict[str, Any]:
    """The spec overrides of a variant: generous limits, pricing, and the budgets when it has them."""
    overrides = merge(GENEROUS, {"agent": {"pricing": PRICING}})
    if variant.budgets:
        overrides = merge(overrides, {"security": {"budgets": BUDGETS}})
    return overrides


@contextlib.contextmanager
def runtime(variant: Variant, redis_url: str) -> Iterator[RuntimeProcess]:
    """A runtime process serving the TestModel agent named after `variant`, with Redis as its cache or none."""
    with tempfile.TemporaryDirectory(prefix=f"agentry-budget-bench-{variant.name}-") as tmp:
        folder = Path(tmp)
        backend = Backend(data_dir=folder, redis_url=redis_url if variant.redis else None)
        config = write_manifest(folder / "agent.yaml", backend.spec(overrides_for(variant)), name=variant.name)
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
            answer = await http.post("/v1/run", json={"prompt": PROMPT}, headers=headers)
            if answer.status_code != 200:
                raise RuntimeError(f"{url} answered {answer.status_code}: {answer.text[:200]}")

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        await client_warmup(http, headers)
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        return requests / (time.perf_counter() - started)


async def client_warmup(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """A few requests first, so connection set-up is not measured."""
    for _ in range(WARMUP):
        (await http.post("/v1/run", json={"prompt": "warm up"}, headers=headers)).raise_for_status()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def redis_cpu_seconds(client: redis.Redis) -> float:
    """User and system CPU time the Redis server has used so far (its own INFO, so no need for its PID)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def measure(
    runtimes: dict[str, RuntimeProcess], *, redis_client: redis.Redis, requests: int, rounds: int, concurrency: int
) -> tuple[dict[str, list[float]], dict[str, float], dict[str, float]]:
    """Each runtime's requests per second in every round (the runtimes taken in turn), and CPU per request.

    CPU per request is the runtime process's own (ms), and Redis's while that runtime was loaded (ms): on this
    machine the server shares the cores with the runtime it answers.
    """
    samples: dict[str, list[float]] = {name: [] for name in runtimes}
    runtime_cpu = dict.fromkeys(runtimes, 0.0)
    redis_cpu = dict.fromkeys(runtimes, 0.0)
    for round_number in range(rounds):
        order = list(runtimes) if round_number % 2 == 0 else list(reversed(runtimes))
        for name in order:
            pid = runtimes[name].process.pid
            before, redis_before = cpu_seconds(pid), redis_cpu_seconds(redis_client)
            samples[name].append(await load(runtimes[name].url, requests=requests, concurrency=concurrency))
            runtime_cpu[name] += cpu_seconds(pid) - before
            redis_cpu[name] += redis_cpu_seconds(redis_client) - redis_before
        print(f"round {round_number + 1}/{rounds}: " + ", ".join(f"{n} {samples[n][-1]:.1f}/s" for n in runtimes))
    served = (requests + WARMUP) * rounds
    per_request = {name: round(1000 * cpu / served, 3) for name, cpu in runtime_cpu.items()}
    redis_per_request = {name: round(1000 * cpu / served, 3) for name, cpu in redis_cpu.items()}
    return samples, per_request, redis_per_request


def spend_check(variant: Variant, process: RuntimeProcess, *, redis_client: redis.Redis, served: int) -> dict[str, Any]:
    """The runtime's /health `spend` after the load, checked: tokens counted, shared with Redis, as in Redis."""
    report = httpx.get(f"{process.url}/health", timeout=10).json()
    spend: dict[str, Any] = report["spend"]
    if not spend["tokens"] > 0:
        raise RuntimeError(f"{variant.name}: /health spend counted no tokens: {spend}")
    if spend["shared"] is not variant.redis:
        raise RuntimeError(f"{variant.name}: /health spend shared={spend['shared']}, expected {variant.redis}")
    if not spend["cost"]:
        raise RuntimeError(f"{variant.name}: /health spend has no cost although the agent has pricing: {spend}")
    if variant.budgets and spend["budgetPercent"] is None:
        raise RuntimeError(f"{variant.name}: /health spend has no budgetPercent although it has budgets: {spend}")
    checked: dict[str, Any] = {
        "tokens": spend["tokens"],
        "tokensPerRun": round(spend["tokens"] / served, 3),
        "cost": spend["cost"],
        "shared": spend["shared"],
        "budgetPercent": spend["budgetPercent"],
        "period": spend["period"],
    }
    prefix = f"agentry:{NAMESPACE}:{variant.name}:budget:{spend['period']}"
    if variant.redis:
        stored = redis_client.hget(f"{prefix}:agent", "t")
        if stored is None or int(stored) != spend["tokens"]:
            raise RuntimeError(f"{variant.name}: Redis holds {stored!r} tokens, /health says {spend['tokens']}")
        checked["redisAgentTokens"] = int(stored)
    checked["redisPrincipalHashes"] = sum(1 for _ in redis_client.scan_iter(f"{prefix}:principal:*", count=1000))
    expected_principals = 1 if variant.redis and variant.budgets else 0
    if checked["redisPrincipalHashes"] != expected_principals:
        raise RuntimeError(f"{variant.name}: {checked['redisPrincipalHashes']} principal hashes in Redis")
    checked["health"] = report["status"]
    checked["dependencies"] = {d["name"]: d["state"] for d in report["dependencies"]}
    return checked


def microseconds(samples: list[float]) -> dict[str, float]:
    """Median and 95th percentile of samples in nanoseconds, as microseconds."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median": round(statistics.median(ordered) / 1000, 1), "p95": round(p95 / 1000, 1)}


async def ledger_latency(redis_url: str, *, calls: int = 2000, warmup: int = 50) -> dict[str, dict[str, float]]:
    """Microseconds per sequential call of the Redis ledger's operations from this process, with a PING for scale.

    Built as tests/runtime/security/test_budgets_redis.py builds a replica: a RedisLedger under its own prefix,
    Budgets with the benchmark's (never reached) limits. The operations are interleaved call by call.
    """
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        ledger = RedisLedger(redis=client, prefix="agentry:bench:ledger:budget", clock=time.monotonic)
        policy = Policy.from_spec(BudgetsSpec.model_validate(BUDGETS), None)
        budgets = Budgets(policy=policy, ledger=ledger, key=principal_hasher(b"k" * 32))
        subject = "alice@example.com"
        principal = budgets.principal_key(subject)
        amount = Spent(tokens=60, nanos=12_000)

        async def charge_agent() -> object:
            return await ledger.charge(budgets.period(), None, amount)

        async def charge_both() -> object:
            return await ledger.charge(budgets.period(), principal, amount)

        async def check() -> object:
            decision = await budgets.check(subject)
            if not decision.allowed:
                raise RuntimeError(f"Budgets.check refused: {decision}")
            return decision

        async def ping() -> object:
            return await client.ping()

        operations: dict[str, Callable[[], Awaitable[object]]] = {
            "RedisLedger.charge(agent)": charge_agent,
            "RedisLedger.charge(agent+principal)": charge_both,
            "Budgets.check": check,
            "redis PING": ping,
        }
        samples: dict[str, list[float]] = {name: [] for name in operations}
        for _ in range(warmup):
            for operation in operations.values():
                await operation()
        for _ in range(calls):
            for name, operation in operations.items():
                started = time.perf_counter_ns()
                await operation()
                samples[name].append(float(time.perf_counter_ns() - started))
        if not ledger.healthy or ledger.pending:
            raise RuntimeError(f"the ledger fell back to this process: {ledger.redis.last_error}")
        agent, _ = await ledger.spent(budgets.period(), None)
        expected = amount.tokens * 2 * (calls + warmup)
        if agent.tokens != expected:
            raise RuntimeError(f"the ledger holds {agent.tokens} tokens after the calls, expected {expected}")
        return {name: microseconds(values) for name, values in samples.items()}
    finally:
        await client.aclose()


def summary(results: dict[str, Any]) -> str:
    """A few lines for a reader of the console."""
    median, cpu, redis_cpu = (
        results["medianRequestsPerSecond"],
        results["runtimeCpuMsPerRequest"],
        results["redisCpuMsPerRequest"],
    )
    lines = [f"{'variant':<18} {'req/s':>8} {'runtime CPU ms/req':>19} {'redis CPU ms/req':>17} {'spend tokens':>13}"]
    for name in median:
        tokens = results["spend"][name]["tokens"]
        lines.append(f"{name:<18} {median[name]:>8.1f} {cpu[name]:>19.3f} {redis_cpu[name]:>17.3f} {tokens:>13}")
    for name, checked in results["spend"].items():
        unwell = {dep: state for dep, state in checked["dependencies"].items() if state != "ok"}
        if checked["health"] != "healthy" or unwell:
            lines.append(f"WARNING {name}: /health {checked['health']}, dependencies not ok: {unwell}")
    lines.append("ratios: " + ", ".join(f"{k} {v:.3f}" for k, v in results["ratios"].items()))
    lines.append("ledger µs per call (median / p95):")
    for name, value in results["ledgerMicroseconds"].items():
        lines.append(f"  {name:<36} {value['median']:>7.1f} / {value['p95']:.1f}")
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark and write its JSON results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    started = time.monotonic()
    with running_redis() as server:
        redis_client = redis.Redis.from_url(server.url, decode_responses=True)
        try:
            with contextlib.ExitStack() as stack:
                runtimes = {v.name: stack.enter_context(runtime(v, server.url)) for v in VARIANTS}
                samples, cpu, redis_cpu = asyncio.run(
                    measure(
                        runtimes,
                        redis_client=redis_client,
                        requests=args.requests,
                        rounds=args.rounds,
                        concurrency=args.concurrency,
                    )
                )
                served = (args.requests + WARMUP) * args.rounds
                spend = {
                    v.name: spend_check(v, runtimes[v.name], redis_client=redis_client, served=served) for v in VARIANTS
                }
            ledger = asyncio.run(ledger_latency(server.url))
            redis_version = str(redis_client.info("server")["redis_version"])
        finally:
            redis_client.close()
    median = {name: statistics.median(values) for name, values in samples.items()}
    results = {
        "benchmark": "budget_bench",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "redis": redis_version},
        "settings": {"requests": args.requests, "rounds": args.rounds, "concurrency": args.concurrency},
        "budgets": BUDGETS,
        "pricing": PRICING,
        "requestsPerSecond": {name: [round(v, 1) for v in values] for name, values in samples.items()},
        "medianRequestsPerSecond": {name: round(v, 1) for name, v in median.items()},
        "ratios": {
            "redis-budgets/redis-no-budgets": round(median["redis-budgets"] / median["redis-no-budgets"], 3),
            "local-budgets/local-no-budgets": round(median["local-budgets"] / median["local-no-budgets"], 3),
            "redis-no-budgets/local-no-budgets": round(median["redis-no-budgets"] / median["local-no-budgets"], 3),
            "redis-budgets/local-no-budgets": round(median["redis-budgets"] / median["local-no-budgets"], 3),
        },
        "runtimeCpuMsPerRequest": cpu,
        "redisCpuMsPerRequest": redis_cpu,
        "cpuRatioToLocalNoBudgets": {
            name: round(value / cpu["local-no-budgets"], 3) for name, value in cpu.items() if name != "local-no-budgets"
        },
        "spend": spend,
        "ledgerMicroseconds": ledger,
        "ledgerCalls": 2000,
        "note": (
            "with Redis the per-minute rate limiter is in Redis too (both redis variants alike), so "
            "redis-no-budgets/local-no-budgets includes it; redisCpuMsPerRequest is Redis's CPU while that "
            "runtime was loaded"
        ),
        "elapsedSeconds": round(time.monotonic() - started, 1),
    }
    args.output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(results, indent=2, ensure_ascii=False))
    print(summary(results))


if __name__ == "__main__":
    main()
