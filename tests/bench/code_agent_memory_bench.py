"""Benchmark: resident memory of a runtime process serving the code-mode example against a declarative agent.

Each agent runs as a real runtime process (`python -m agent_runtime`, as in a pod), offline on the `test` model with
JWT auth, audit and SQLite. RSS is read (psutil) once the process is ready and again after a bounded number of
runs, for each round; rounds alternate the two agents so drift hits both alike.

    .venv/bin/python -m tests.bench.code_agent_memory_bench results.json [--rounds 3] [--runs 50]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

from agent_runtime.security.tokens import mint_token
from tests.runtime.harness import JWT_KEY, JWT_REF, env_for
from tests.runtime.process import running_runtime, write_manifest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "code-agent"
SECURITY: dict[str, Any] = {"auth": {"secretRef": JWT_REF}, "audit": {"enabled": True}}


def declarative_spec() -> dict[str, Any]:
    """The smallest declarative agent on the offline model."""
    return {"agent": {"model": "test", "instructions": "You file support tickets."}, "security": SECURITY}


def code_spec() -> dict[str, Any]:
    """The example's own spec, offline: the `test` model (which calls every tool), no status API."""
    spec: dict[str, Any] = yaml.safe_load((EXAMPLE / "agent.yaml").read_text())["spec"]
    spec["agent"] = {"code": spec["agent"]["code"], "model": "test"}
    spec["services"] = {}
    spec["security"] = {**SECURITY, "auth": {**SECURITY["auth"], "audience": "support"}}
    return spec


def measure(spec: dict[str, Any], *, runs: int, audience: str) -> dict[str, float]:
    """RSS in MiB of one runtime process when ready and after `runs` runs."""
    with tempfile.TemporaryDirectory(prefix="agentry-bench-") as folder:
        data = Path(folder)
        config = write_manifest(data / "agent.yaml", spec)
        env = {**env_for({"jwt": JWT_KEY}, {"jwt": JWT_REF}), "PYTHONPATH": str(EXAMPLE)}
        with running_runtime(config=config, env=env, data_dir=data) as runtime:
            process = psutil.Process(runtime.process.pid)
            ready = process.memory_info().rss / 2**20
            token = mint_token(key=JWT_KEY, subject="bench", roles=["agent_operator"], audience=audience)
            with httpx.Client(base_url=runtime.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
                for _ in range(runs):
                    client.post("/v1/run", json={"prompt": "My printer is on fire"}).raise_for_status()
            after = process.memory_info().rss / 2**20
    return {"ready_mib": round(ready, 1), "after_runs_mib": round(after, 1)}


def main(argv: list[str] | None = None) -> int:
    """Measure both agents `--rounds` times and write the medians and every sample to the results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args(argv)
    samples: dict[str, list[dict[str, float]]] = {"declarative": [], "code": []}
    for _ in range(args.rounds):
        samples["declarative"].append(measure(declarative_spec(), runs=args.runs, audience="agentry"))
        samples["code"].append(measure(code_spec(), runs=args.runs, audience="support"))
    medians = {
        agent: {key: statistics.median(s[key] for s in runs) for key in ("ready_mib", "after_runs_mib")}
        for agent, runs in samples.items()
    }
    report = {
        "benchmark": "code_agent_memory",
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "rounds": args.rounds,
        "runs_per_round": args.runs,
        "median": medians,
        "code_minus_declarative_mib": {
            key: round(medians["code"][key] - medians["declarative"][key], 1) for key in ("ready_mib", "after_runs_mib")
        },
        "samples": samples,
    }
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"median": medians, "difference": report["code_minus_declarative_mib"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
