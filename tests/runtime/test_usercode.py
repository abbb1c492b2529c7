"""Code mode: the user's own agent, imported by entrypoint, served through the whole request envelope."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_runtime.config import ConfigError
from agent_runtime.services.build import build_database

from .harness import Backend, auth, base_spec, serving, stored_audit
from .models import structured_model, tool_then_text
from .process import write_manifest
from .usercode import agents

AGENTS = "tests.runtime.usercode.agents"
IMAGE = {"pod": {"image": "example.com/support-bot:1"}}


def code(entrypoint: str, **fields: Any) -> dict[str, Any]:
    """The agent section of a code-mode spec."""
    return {"code": {"entrypoint": entrypoint}, **fields}


@pytest.fixture
def crm_up() -> Iterator[dict[str, bool]]:
    agents.CRM_UP["value"] = True
    yield agents.CRM_UP
    agents.CRM_UP["value"] = True


async def test_a_code_agent_runs_its_tools_on_the_injected_services(runtime_backend: Backend) -> None:
    model = tool_then_text("file_ticket", {"title": "printer on fire", "email": "bob@example.com"})
    runtime = runtime_backend.runtime(IMAGE, agent=code(f"{AGENTS}:agent"), model=model)
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            response = await client.post("/v1/run", json={"prompt": "my printer burns"}, headers=auth())
            assert response.status_code == 200, response.text
            body = response.json()
            ticket_id = json.loads(body["output"])
            assert body["usage"]["inputTokens"] > 0
            metrics = (await client.get("/metrics")).text
    assert 'agentry_tool_calls_total{outcome="ok",tool="file_ticket"} 1.0' in metrics
    assert ticket_id == f"T-{body['runId'][:8]}"
    database = build_database(config=runtime.config, data_dir=runtime_backend.data_dir)
    await database.start()
    try:
        ticket = await database.get("tickets", ticket_id)
    finally:
        await database.close()
    assert ticket == {
        "title": "printer on fire",
        "email": "bob@example.com",
        "by": "alice@example.com",
        "run": body["runId"],
    }
    [record] = [r for r in await stored_audit(runtime, runtime_backend) if r["endpoint"] == "run"]
    assert record["run_ids"] == [body["runId"]]
    [call] = record["tool_calls"]
    assert call["tool"] == "file_ticket" and call["ok"] is True
    assert call["args"]["title"] == "printer on fire"
    assert "bob@example.com" not in json.dumps(record), "tool arguments are audited redacted"
    assert record["redactions"]["email"] >= 1


async def test_a_failing_tool_call_is_audited_with_the_failed_run(tmp_path: Path) -> None:
    backend = Backend(data_dir=tmp_path)
    runtime = backend.runtime(
        IMAGE, agent=code(f"{AGENTS}:agent"), model=tool_then_text("failing_tool", {"reason": "x"})
    )
    with serving(runtime) as url:
        response = httpx.post(f"{url}/v1/run", json={"prompt": "fail"}, headers=auth())
    assert response.status_code == 500
    [record] = [r for r in await stored_audit(runtime, backend) if r["endpoint"] == "run"]
    assert record["outcome"] == "error"
    assert [(c["tool"], c["ok"]) for c in record["tool_calls"]] == [("failing_tool", False)]


async def test_a_factory_builds_the_users_own_deps_and_health_checks(tmp_path: Path, crm_up: dict[str, bool]) -> None:
    backend = Backend(data_dir=tmp_path)
    runtime = backend.runtime(IMAGE, agent=code(f"{AGENTS}:build"), model=tool_then_text("count_tickets", {}))
    with serving(runtime) as url:
        response = httpx.post(f"{url}/v1/run", json={"prompt": "how many?"}, headers=auth())
        assert response.status_code == 200, response.text
        assert json.loads(response.json()["output"]) == 0
        healthy = httpx.get(f"{url}/health").json()
        crm_up["value"] = False
        degraded = httpx.get(f"{url}/health").json()
    assert healthy["status"] == "healthy"
    assert {d["name"]: d["state"] for d in healthy["dependencies"]}["crm"] == "ok"
    assert degraded["status"] == "degraded"
    [crm] = [d for d in degraded["dependencies"] if d["name"] == "crm"]
    assert crm["state"] == "degraded" and "crm.example is not answering" in crm["detail"]


async def test_an_agent_without_deps_and_the_spec_output_schema(tmp_path: Path) -> None:
    """The spec's outputSchema replaces the agent's output type; the schema check retries like a declarative agent's."""
    schema = {"type": "object", "properties": {"sum": {"type": "integer"}}, "required": ["sum"]}
    answers: list[dict[str, Any]] = [{"sum": "three"}, {"sum": 3}]
    model = structured_model(lambda prompt, attempt: answers[attempt])
    backend = Backend(data_dir=tmp_path)
    runtime = backend.runtime(IMAGE, agent=code(f"{AGENTS}:plain", outputSchema=schema), model=model)
    with serving(runtime) as url:
        response = httpx.post(f"{url}/v1/run", json={"prompt": "1+2"}, headers=auth())
    assert response.status_code == 200, response.text
    assert response.json()["output"] == {"sum": 3}


async def test_the_run_counts_against_the_callers_token_limit(tmp_path: Path) -> None:
    backend = Backend(data_dir=tmp_path)
    limits = {"security": {"rateLimit": {"tokensPerMinute": 60}}, **IMAGE}
    model = tool_then_text("file_ticket", {"title": "t", "email": "e@example.com"})
    runtime = backend.runtime(limits, agent=code(f"{AGENTS}:agent"), model=model)
    with serving(runtime) as url:
        first = httpx.post(f"{url}/v1/run", json={"prompt": "file it"}, headers=auth())
        second = httpx.post(f"{url}/v1/run", json={"prompt": "file it"}, headers=auth())
    assert first.status_code == 200, first.text
    used = first.json()["usage"]["inputTokens"] + first.json()["usage"]["outputTokens"]
    assert used > 60, "the scripted run really used more than the minute's budget"
    assert second.status_code == 429
    assert "token" in second.json()["error"]["message"]


@pytest.mark.parametrize(
    ("entrypoint", "problem"),
    [
        ("no_such_bot.agent:agent", "no module named 'no_such_bot' in the image"),
        (f"{AGENTS}:missing", "has no attribute 'missing'"),
        (
            "tests.runtime.usercode.broken:agent",
            "importing tests.runtime.usercode.broken failed: ImportError: support_bot needs the 'crm' extra",
        ),
        (f"{AGENTS}:not_an_agent", "expected a pydantic-ai Agent, an AgentApp or a factory, got builtins.int"),
        (f"{AGENTS}:returns_nothing", "the factory returned builtins.NoneType, expected an Agent or an AgentApp"),
        (f"{AGENTS}:raises", "the factory failed: ValueError: the CRM client needs CRM_URL"),
        (f"{AGENTS}:async_factory", "the factory is async"),
        (f"{AGENTS}:two_arguments", "a factory takes one argument, the agent's Services"),
        (
            f"{AGENTS}:wrong_deps",
            "the agent's deps_type is TicketDeps, and Agentry gives agent_runtime.sdk.AgentryDeps",
        ),
        (f"{AGENTS}:app_without_agent", "AgentApp.agent is builtins.str, expected a pydantic-ai Agent"),
    ],
)
def test_an_entrypoint_that_cannot_be_served_names_itself_and_the_problem(
    tmp_path: Path, entrypoint: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        Backend(data_dir=tmp_path).runtime(IMAGE, agent=code(entrypoint))
    [line] = refused.value.lines
    assert line.startswith(f"spec.agent.code.entrypoint: {entrypoint}: ")
    assert problem in line


def test_the_runtime_exits_2_with_the_line_in_the_termination_message(tmp_path: Path) -> None:
    spec = base_spec()
    spec["agent"] = code("tests.runtime.usercode.broken:agent")
    spec.update(IMAGE)
    config = write_manifest(tmp_path / "agent.yaml", spec)
    termination = tmp_path / "termination-log"
    env = {
        **os.environ,
        "AGENTRY_SECRET_JWT__KEY": "k" * 32,
        "AGENTRY_DATA_DIR": str(tmp_path),
        "AGENTRY_TERMINATION_LOG": str(termination),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "agent_runtime", "--config", str(config), "--port", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    message = termination.read_text(encoding="utf-8")
    assert "spec.agent.code.entrypoint: tests.runtime.usercode.broken:agent: importing" in message
    assert "support_bot needs the 'crm' extra" in message
    assert "(tests/runtime/usercode/broken.py:5)" in message
    assert "Traceback" not in result.stderr
