"""The support bot through Agentry's real request envelope, with recording in-memory services (no cluster).

The model is scripted (FunctionModel) or pydantic-ai's TestModel, so the tests run offline and say exactly which
tool the model calls with which arguments.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel

from agent_runtime.testing import AgentHarness, ScriptedExternalApi
from support_bot.agent import TICKETS

MANIFEST = Path(__file__).resolve().parents[1] / "agent.yaml"


def calls(tool: str, **args: Any) -> FunctionModel:
    """A model that calls `tool` with `args` once, then answers with what the tool returned."""

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returned = [part for part in messages[-1].parts if isinstance(part, ToolReturnPart)]
        if not returned:
            return ModelResponse(parts=[ToolCallPart(tool, args)])
        return ModelResponse(parts=[TextPart(returned[0].model_response_str())])

    return FunctionModel(model)


async def test_a_reported_problem_becomes_a_ticket_of_the_caller() -> None:
    model = calls("file_ticket", title="Printer on fire", severity="high")
    async with AgentHarness(manifest=MANIFEST, model=model) as kit:
        answer = await kit.run("My printer is on fire!", subject="alice")
        audit = await kit.audit()

    assert answer.status_code == 200, answer.text
    [(ticket_id, ticket)] = kit.database.collection(TICKETS).items()
    assert ticket == {
        "id": ticket_id,
        "title": "Printer on fire",
        "severity": "high",
        "status": "open",
        "reporter": "alice",
    }
    assert ticket_id in answer.json()["output"]
    [run] = [record for record in audit if record["endpoint"] == "run"]
    assert run["outcome"] == "ok"
    assert run["principal"] == "alice"
    assert [(call["tool"], call["args"], call["ok"]) for call in run["tool_calls"]] == [
        ("file_ticket", {"title": "Printer on fire", "severity": "high"}, True)
    ]


async def test_a_looked_up_ticket_is_served_from_the_cache_the_second_time() -> None:
    async with AgentHarness(manifest=MANIFEST, model=calls("look_up_ticket", ticket_id="T-0000abcd")) as kit:
        await kit.services.database.put(
            TICKETS, "T-0000abcd", {"id": "T-0000abcd", "title": "VPN down", "reporter": "bob"}
        )
        first = await kit.ask("What about T-0000abcd?")
        second = await kit.ask("And again?")

    assert json.loads(first)["title"] == "VPN down"
    assert second == first
    assert kit.database.calls_to("get") == [{"collection": TICKETS, "key": "T-0000abcd"}]
    assert [call.method for call in kit.cache.app_calls()] == ["get", "set", "get"]


async def test_closing_a_ticket_drops_its_cached_look_up() -> None:
    async with AgentHarness(manifest=MANIFEST, model=calls("close_ticket", ticket_id="T-0000abcd")) as kit:
        await kit.services.database.put(TICKETS, "T-0000abcd", {"id": "T-0000abcd", "title": "VPN", "reporter": "b"})
        await kit.services.cache.set("ticket:T-0000abcd", "stale")
        await kit.ask("Close T-0000abcd, it works now")

        assert await kit.services.cache.get("ticket:T-0000abcd") is None
    closed = kit.database.collection(TICKETS)["T-0000abcd"]
    assert isinstance(closed, dict) and closed["status"] == "closed"


async def test_the_status_tool_asks_the_status_api() -> None:
    api = ScriptedExternalApi().reply("GET", "/status/email", json={"state": "degraded", "since": "09:12"})
    async with AgentHarness(manifest=MANIFEST, model=calls("service_status", service="email"), external_api=api) as kit:
        output = await kit.ask("Is email broken?")

    assert json.loads(output) == {"state": "degraded", "since": "09:12"}
    assert api.calls_to("request") == [{"method": "GET", "path": "/status/email", "json": None}]


async def test_every_tool_runs_with_test_model_whatever_its_arguments() -> None:
    async with AgentHarness(manifest=MANIFEST, model=TestModel()) as kit:
        answer = await kit.run("Anything")
        audit = await kit.audit()

    assert answer.status_code == 200, answer.text
    returned = json.loads(answer.json()["output"])
    [ticket_id] = kit.database.collection(TICKETS)
    assert returned["file_ticket"]["id"] == ticket_id
    assert (
        returned["look_up_ticket"]
        == returned["close_ticket"]
        == "'a' is not a ticket id (T- and 8 hex digits, as file_ticket returns it)"
    )
    assert returned["service_status"] == "unknown: no status API is configured"
    [run] = [record for record in audit if record["endpoint"] == "run"]
    assert sorted(call["tool"] for call in run["tool_calls"]) == [
        "close_ticket",
        "file_ticket",
        "look_up_ticket",
        "service_status",
    ]


async def test_callers_without_a_valid_token_are_refused_before_any_tool_runs() -> None:
    async with AgentHarness(manifest=MANIFEST, model=calls("file_ticket", title="x")) as kit:
        answer = await kit.client.post("/v1/run", json={"prompt": "hi"}, headers={"Authorization": "Bearer nope"})

    assert answer.status_code == 401
    assert kit.database.collection(TICKETS) == {}
