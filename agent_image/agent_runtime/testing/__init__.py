"""Testing a user's own agent without a cluster: recording in-memory services and the real request envelope.

    from pydantic_ai.models.test import TestModel
    from agent_runtime.testing import AgentHarness

    async def test_the_agent_files_a_ticket() -> None:
        async with AgentHarness(manifest="agent.yaml", model=TestModel()) as kit:
            answer = await kit.run("My printer is on fire")
            assert answer.status_code == 200
            assert kit.database.collection("tickets")
            [record] = await kit.audit()
            assert record["outcome"] == "ok"
            assert [call["tool"] for call in record["tool_calls"]] == ["file_ticket"]

Needs only the runtime (`agentry[runtime]`): no pytest plugin, no test dependency; any async test runner works.
"""

from .harness import AgentHarness, HarnessError
from .services import Call, MemoryDatabase, RecordingCache, Reply, ScriptedExternalApi

__all__ = [
    "AgentHarness",
    "Call",
    "HarnessError",
    "MemoryDatabase",
    "RecordingCache",
    "Reply",
    "ScriptedExternalApi",
]
