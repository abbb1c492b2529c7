"""The runtime as pods run it: JSON-line logs without secrets or PII; rate limits and budgets shared over Redis."""

from __future__ import annotations

import json
import signal
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
import redis

from .harness import JWT_KEY, Backend, auth, token
from .process import running_runtime, write_manifest


async def test_logs_are_json_lines_without_secrets_or_pii(runtime_backend: Backend) -> None:
    config = write_manifest(runtime_backend.data_dir / "agent.yaml", runtime_backend.spec())
    secret_token = token(subject="carol@example.com")
    prompt = "I am carol@example.com, SSN 123-45-6789, card 4111 1111 1111 1111"
    with running_runtime(config=config, env=runtime_backend.env(), data_dir=runtime_backend.data_dir) as proc:
        ok = httpx.post(
            f"{proc.url}/v1/run", json={"prompt": prompt}, headers={"Authorization": f"Bearer {secret_token}"}
        )
        refused = httpx.post(f"{proc.url}/v1/run", json={"prompt": prompt}, headers={"Authorization": "Bearer x.y.z"})
        proc.process.send_signal(signal.SIGTERM)
        proc.wait()
        stdout, stderr = proc.output(), proc.stderr.read_text()
    assert (ok.status_code, refused.status_code) == (200, 401)
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert {line.get("kind") for line in lines} >= {"audit", "audit_checkpoint"}
    assert [line["status"] for line in lines if line.get("message") == "request"] == [200, 401]
    everything = stdout + stderr
    for leak in ("carol@example.com", "123-45-6789", "4111 1111 1111 1111", secret_token, JWT_KEY):
        assert leak not in everything


@pytest.mark.services
@pytest.mark.parametrize("backend", ["real"], indirect=True)
async def test_a_rate_limit_holds_across_two_processes_sharing_redis(runtime_backend: Backend, tmp_path: Path) -> None:
    spec = runtime_backend.spec({"security": {"rateLimit": {"requestsPerMinute": 3}}})
    statuses: list[int] = []
    with ExitStack() as stack:
        procs = []
        for name in ("a", "b"):
            data_dir = tmp_path / name
            data_dir.mkdir()
            config = write_manifest(data_dir / "agent.yaml", spec)
            procs.append(
                stack.enter_context(running_runtime(config=config, env=runtime_backend.env(), data_dir=data_dir))
            )
        for i in range(5):
            response = httpx.post(f"{procs[i % 2].url}/v1/run", json={"prompt": "x"}, headers=auth())
            statuses.append(response.status_code)
        other = httpx.post(f"{procs[0].url}/v1/run", json={"prompt": "x"}, headers=auth(subject="dave"))
    assert statuses == [200, 200, 200, 429, 429]
    assert other.status_code == 200


@pytest.mark.services
@pytest.mark.parametrize("backend", ["real"], indirect=True)
async def test_a_budget_holds_across_two_processes_sharing_redis(runtime_backend: Backend, tmp_path: Path) -> None:
    assert runtime_backend.redis_url
    client = redis.Redis.from_url(runtime_backend.redis_url)
    for key in client.scan_iter("agentry:test:budgeted:budget:*"):
        client.delete(key)
    client.close()
    spec = runtime_backend.spec({"security": {"budgets": {"perPrincipal": {"tokens": 150}}}})
    answers: list[httpx.Response] = []
    with ExitStack() as stack:
        procs = []
        for name in ("a", "b"):
            data_dir = tmp_path / name
            data_dir.mkdir()
            config = write_manifest(data_dir / "agent.yaml", spec, name="budgeted")
            procs.append(
                stack.enter_context(running_runtime(config=config, env=runtime_backend.env(), data_dir=data_dir))
            )
        for i in range(8):
            answers.append(httpx.post(f"{procs[i % 2].url}/v1/run", json={"prompt": "x"}, headers=auth(), timeout=10))
        other = httpx.post(f"{procs[1].url}/v1/run", json={"prompt": "x"}, headers=auth(subject="dave"), timeout=10)
        spends = [httpx.get(f"{proc.url}/health").json()["spend"] for proc in procs]
    statuses = [answer.status_code for answer in answers]
    allowed = statuses.count(200)
    assert statuses == [200] * allowed + [429] * (8 - allowed), statuses
    usage = answers[0].json()["usage"]
    per_run = usage["inputTokens"] + usage["outputTokens"]
    assert (allowed - 1) * per_run < 150 <= allowed * per_run  # spend stopped within one run of the budget
    assert answers[-1].json()["error"]["type"] == "budget_exceeded"
    assert other.status_code == 200
    assert spends[0]["tokens"] == spends[1]["tokens"] == (allowed + 1) * per_run
    assert spends[0]["shared"] and spends[1]["shared"]


def test_a_draft_07_schema_the_operator_accepts_starts_the_runtime_and_judges_outputs(tmp_path: Path) -> None:
    """Tuple `items` is draft-07's; the runtime used to refuse it at start-up (exit 2) after the operator said Ready."""
    backend = Backend(data_dir=tmp_path)
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"pair": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}},
        "definitions": {"unused": {"type": "string"}},
    }
    config = write_manifest(tmp_path / "agent.yaml", backend.spec({"agent": {"outputSchema": schema}}))
    with running_runtime(config=config, env=backend.env(), data_dir=tmp_path) as proc:
        answer = httpx.post(f"{proc.url}/v1/run", json={"prompt": "pair"}, headers=auth(), timeout=30)
    assert answer.status_code == 200, answer.text
    assert isinstance(answer.json()["output"], dict)
