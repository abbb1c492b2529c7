"""Conversations on /v1/run: history seen by later turns, owned, bounded, expiring, one turn at a time."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo, FunctionModel

from agent_runtime.conversations import trim
from agent_runtime.settings import RuntimeSettings

from .harness import Backend, auth, serving, stored_audit
from .models import conversing_model, output_call, user_prompts
from .process import running_runtime, write_manifest

BOB = auth(subject="bob@example.com")


async def turn(
    client: httpx.AsyncClient, prompt: str, conversation_id: str | None = None, **kwargs: Any
) -> httpx.Response:
    """One turn: POST /v1/run with the conversation id when there is one."""
    body: dict[str, Any] = {"prompt": prompt}
    if conversation_id is not None:
        body["conversationId"] = conversation_id
    return await client.post("/v1/run", json=body, headers=kwargs.get("headers", auth()))


async def test_a_later_turn_sees_the_earlier_ones_and_the_audit_names_the_conversation(
    runtime_backend: Backend,
) -> None:
    runtime = runtime_backend.runtime(model=conversing_model())
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            first = await turn(client, "first")
            assert first.status_code == 200, first.text
            conversation_id = first.json()["conversationId"]
            second = await turn(client, "second", conversation_id)
            other = await turn(client, "unrelated")
            stored = await client.get(f"/v1/conversations/{conversation_id}", headers=auth())
    assert first.json()["output"] == "first | seen: "
    assert second.status_code == 200, second.text
    assert second.json()["output"] == "second | seen: first"
    assert second.json()["conversationId"] == conversation_id
    assert other.json()["conversationId"] != conversation_id
    assert other.json()["output"] == "unrelated | seen: "
    assert stored.status_code == 200
    kinds = [message["kind"] for message in stored.json()["messages"]]
    assert kinds == ["request", "response", "request", "response"]
    audited = [r for r in await stored_audit(runtime, runtime_backend) if r["endpoint"] == "run"]
    assert [r["conversation_id"] for r in audited] == [conversation_id, conversation_id, other.json()["conversationId"]]


async def test_another_principals_conversation_is_404_like_an_unknown_one(runtime_backend: Backend) -> None:
    with serving(runtime_backend.runtime(model=conversing_model())) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            conversation_id = (await turn(client, "mine")).json()["conversationId"]
            stolen = await turn(client, "let me in", conversation_id, headers=BOB)
            unknown = await turn(client, "hello", "no-such-conversation")
            read = await client.get(f"/v1/conversations/{conversation_id}", headers=BOB)
            deleted = await client.delete(f"/v1/conversations/{conversation_id}", headers=BOB)
            still_mine = await turn(client, "still mine?", conversation_id)
    for refused, shown in ((stolen, conversation_id), (read, conversation_id), (deleted, conversation_id)):
        assert refused.status_code == 404
        assert refused.json() == {"error": {"type": "not_found", "message": f"no conversation with id {shown!r}"}}
    assert unknown.status_code == 404
    assert unknown.json()["error"] == {"type": "not_found", "message": "no conversation with id 'no-such-conversation'"}
    assert still_mine.json()["output"] == "still mine? | seen: mine"


async def test_the_owner_deletes_a_conversation(runtime_backend: Backend) -> None:
    with serving(runtime_backend.runtime(model=conversing_model())) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            conversation_id = (await turn(client, "hello")).json()["conversationId"]
            deleted = await client.delete(f"/v1/conversations/{conversation_id}", headers=auth())
            again = await client.delete(f"/v1/conversations/{conversation_id}", headers=auth())
            continued = await turn(client, "still there?", conversation_id)
            read = await client.get(f"/v1/conversations/{conversation_id}", headers=auth())
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert [again.status_code, continued.status_code, read.status_code] == [404, 404, 404]


async def test_max_messages_drops_the_oldest_whole_turns(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime({"conversations": {"maxMessages": 4}}, model=conversing_model())
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            conversation_id = (await turn(client, "one")).json()["conversationId"]
            outputs = [(await turn(client, prompt, conversation_id)).json()["output"] for prompt in ("two", "three")]
            fourth = await turn(client, "four", conversation_id)
            stored = (await client.get(f"/v1/conversations/{conversation_id}", headers=auth())).json()
    assert outputs == ["two | seen: one", "three | seen: one / two"]
    assert fourth.json()["output"] == "four | seen: two / three"
    assert len(stored["messages"]) == 4
    assert stored["messages"][0]["parts"][0]["content"] == "three"


def _turn(prompt: str, *, tool: bool = False) -> list[dict[str, Any]]:
    """A turn as stored: the prompt, optionally a tool call and its result, then the answer."""
    messages: list[dict[str, Any]] = [{"kind": "request", "parts": [{"part_kind": "user-prompt", "content": prompt}]}]
    if tool:
        messages.append({"kind": "response", "parts": [{"part_kind": "tool-call", "tool_name": "t", "args": "{}"}]})
        messages.append({"kind": "request", "parts": [{"part_kind": "tool-return", "content": "x" * 200}]})
    messages.append({"kind": "response", "parts": [{"part_kind": "text", "content": f"re: {prompt}"}]})
    return messages


@pytest.mark.parametrize(
    ("max_messages", "max_bytes", "kept"),
    [
        (100, 1_000_000, ["a", "b", "c"]),
        (5, 1_000_000, ["c"]),  # b's turn has 4 messages: dropping only its first two would orphan a tool result
        (6, 1_000_000, ["b", "c"]),
        (100, 600, ["c"]),  # b's tool result makes b and c together too big
        (100, 100, []),  # even the last turn is too big
    ],
)
def test_trimming_cuts_only_where_a_turn_starts(max_messages: int, max_bytes: int, kept: list[str]) -> None:
    history = [*_turn("a"), *_turn("b", tool=True), *_turn("c")]
    trimmed = trim(history, max_messages=max_messages, max_bytes=max_bytes)
    prompts = [m["parts"][0]["content"] for m in trimmed if m["parts"][0]["part_kind"] == "user-prompt"]
    assert prompts == kept
    assert len(json.dumps(trimmed, ensure_ascii=False).encode()) <= max_bytes


async def test_a_conversation_expires_ttl_seconds_after_its_last_turn(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime({"conversations": {"ttlSeconds": 60}}, model=conversing_model())
    now = [1_000_000.0]
    runtime.conversations.clock = lambda: now[0]
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            conversation_id = (await turn(client, "one")).json()["conversationId"]
            now[0] += 59
            kept = await turn(client, "two", conversation_id)  # within the TTL, which now counts from here
            now[0] += 61
            expired = await turn(client, "three", conversation_id)
            now[0] -= 61  # the row is gone, not merely hidden
            gone = await client.get(f"/v1/conversations/{conversation_id}", headers=auth())
    assert kept.json()["output"] == "two | seen: one"
    assert expired.status_code == 404
    assert expired.json()["error"]["type"] == "not_found"
    assert gone.status_code == 404


async def test_concurrent_turns_of_one_conversation_one_is_refused_with_409(runtime_backend: Backend) -> None:
    with serving(runtime_backend.runtime(model=conversing_model())) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            conversation_id = (await turn(client, "start")).json()["conversationId"]
            racing = await asyncio.gather(*(turn(client, f"slow {n}", conversation_id) for n in range(2)))
            after = await turn(client, "after", conversation_id)
    assert sorted(r.status_code for r in racing) == [200, 409]
    busy = next(r for r in racing if r.status_code == 409)
    assert busy.json()["error"]["type"] == "conversation_busy"
    won = next(r for r in racing if r.status_code == 200).json()["output"]
    assert after.status_code == 200
    assert after.json()["output"] == f"after | seen: start / {won.split(' |')[0]}"


async def test_a_timed_out_turn_releases_the_conversation_and_stores_nothing(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime({"concurrency": {"requestTimeoutSeconds": 0.5}}, model=conversing_model())
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            conversation_id = (await turn(client, "start")).json()["conversationId"]
            timed_out = await turn(client, "slow", conversation_id)
            after = await turn(client, "after", conversation_id)
    assert timed_out.status_code == 504
    assert after.json()["output"] == "after | seen: start"


async def test_with_redaction_the_history_is_stored_and_shown_redacted(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime(model=conversing_model())
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            first = await turn(client, "mail carol@example.org")
            conversation_id = first.json()["conversationId"]
            second = await turn(client, "and again", conversation_id)
            stored = await client.get(f"/v1/conversations/{conversation_id}", headers=auth())
    assert first.json()["output"] == "mail carol@example.org | seen: "  # the caller gets its own answer
    assert second.json()["output"] == "and again | seen: mail <email>"  # later turns see the stored history
    assert "carol@example.org" not in json.dumps(stored.json())
    assert "carol@example.org" not in json.dumps(await stored_audit(runtime, runtime_backend))


async def test_without_redaction_the_history_is_kept_as_said(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime({"security": {"privacy": {"enabled": False}}}, model=conversing_model())
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            conversation_id = (await turn(client, "mail carol@example.org")).json()["conversationId"]
            second = await turn(client, "and again", conversation_id)
    assert second.json()["output"] == "and again | seen: mail carol@example.org"


async def test_a_batch_item_with_a_conversation_id_is_refused_naming_the_field(tmp_path: Path) -> None:
    with serving(Backend(data_dir=tmp_path).runtime(model=conversing_model())) as url:
        items = [{"prompt": "a"}, {"prompt": "b", "conversationId": "abc"}]
        refused = httpx.post(f"{url}/v1/run/batch", json={"items": items}, headers=auth())
    assert refused.status_code == 422
    assert "items[1].conversationId" in refused.json()["error"]["message"]


@pytest.mark.services
async def test_two_replicas_on_one_postgresql_continue_and_serialise_one_conversation(
    tmp_path: Path, postgres_url: str
) -> None:
    backend = Backend(data_dir=tmp_path, postgres_url=postgres_url)
    agent = {"code": {"entrypoint": "tests.runtime.usercode.conversing:agent"}}
    config = write_manifest(tmp_path / "agent.yaml", backend.spec({"pod": {"image": "example.com/a:1"}}, agent=agent))
    dirs = [tmp_path / "a", tmp_path / "b"]
    for directory in dirs:
        directory.mkdir()
    env = backend.env()
    with (
        running_runtime(config=config, env=env, data_dir=dirs[0]) as a,
        running_runtime(config=config, env=env, data_dir=dirs[1]) as b,
    ):
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=10) as on_a,
            httpx.AsyncClient(base_url=b.url, timeout=10) as on_b,
        ):
            first = await turn(on_a, "on a")
            conversation_id = first.json()["conversationId"]
            second = await turn(on_b, "on b", conversation_id)
            racing = await asyncio.gather(turn(on_a, "slow a", conversation_id), turn(on_b, "slow b", conversation_id))
    assert first.status_code == 200, first.text
    assert second.json()["output"] == "on b | seen: on a"
    assert sorted(r.status_code for r in racing) == [200, 409]
    assert next(r for r in racing if r.status_code == 409).json()["error"]["type"] == "conversation_busy"


async def test_a_structured_agent_continues_its_conversation(runtime_backend: Backend) -> None:
    schema = {"type": "object", "properties": {"seen": {"type": "integer"}}, "required": ["seen"]}
    seen: list[int] = []

    def choose(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.append(len(user_prompts(messages)))
        return output_call(info, {"seen": seen[-1]})

    runtime = runtime_backend.runtime({"agent": {"outputSchema": schema}}, model=FunctionModel(choose))
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            first = await turn(client, "one")
            second = await turn(client, "two", first.json()["conversationId"])
            third = await turn(client, "three", first.json()["conversationId"])
    assert [r.json()["output"] for r in (first, second, third)] == [{"seen": 1}, {"seen": 2}, {"seen": 3}]


async def test_expired_conversations_nobody_continues_are_swept_on_a_timer(runtime_backend: Backend) -> None:
    settings = RuntimeSettings(conversation_sweep_interval=0.1)
    runtime = runtime_backend.runtime(
        {"conversations": {"ttlSeconds": 60}}, model=conversing_model(), settings=settings
    )
    now = [1_000_000.0]
    runtime.conversations.clock = lambda: now[0]
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            abandoned = (await turn(client, "abandoned")).json()["conversationId"]
            await asyncio.sleep(0.3)  # sweeps meanwhile leave a fresh conversation alone
            kept = await client.get(f"/v1/conversations/{abandoned}", headers=auth())
            now[0] += 61
            await asyncio.sleep(0.3)  # now one sweeps it
            now[0] -= 61  # were the row there, it would be fresh again
            gone = await client.get(f"/v1/conversations/{abandoned}", headers=auth())
    assert kept.status_code == 200
    assert gone.status_code == 404
