"""Human approval of tool calls: a run pauses on a tool that needs it, a person approves or denies, it continues."""

from __future__ import annotations

import json
from typing import Any

import httpx

from .harness import Backend, auth, serving, stored_audit
from .models import streaming_tool_then_words, tool_then_text

ARGS = {"key": "contact", "value": "mail bob@example.com"}
NEEDS_APPROVAL = {"agent": {"toolsets": [{"name": "builtin", "builtin": {}, "requireApproval": ["cache_set"]}]}}


async def paused(client: httpx.AsyncClient) -> dict[str, Any]:
    """A run that paused on cache_set: its answer."""
    response = await client.post("/v1/run", json={"prompt": "remember the contact"}, headers=auth())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def decide(
    client: httpx.AsyncClient, conversation_id: str, approvals: dict[str, Any], **kw: Any
) -> httpx.Response:
    """POST the decisions on the conversation's pending calls."""
    return await client.post(
        f"/v1/conversations/{conversation_id}/approvals",
        json={"approvals": approvals},
        headers=kw.get("headers", auth()),
    )


async def test_a_tool_that_needs_approval_pauses_the_run_and_runs_once_approved(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime(NEEDS_APPROVAL, model=tool_then_text("cache_set", ARGS))
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            first = await paused(client)
            conversation_id = first["conversationId"]
            (pending,) = first["pendingApprovals"]
            while_pending = (await client.get(f"/v1/conversations/{conversation_id}", headers=auth())).json()
            approved = await decide(client, conversation_id, {pending["callId"]: {"approved": True}})
            again = await decide(client, conversation_id, {pending["callId"]: {"approved": True}})
            history = (await client.get(f"/v1/conversations/{conversation_id}", headers=auth())).json()
    assert first["status"] == "awaiting_approval"
    assert first["output"] is None
    assert pending["tool"] == "cache_set"
    assert pending["args"] == ARGS  # the caller sees what it is asked to approve
    # Until decided, the call's arguments are kept as sent (an approved call runs with them) ...
    assert "bob@example.com" in json.dumps(while_pending)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "completed"
    assert approved.json()["conversationId"] == conversation_id
    assert approved.json()["output"] != "null"
    assert again.status_code == 409
    assert again.json()["error"]["type"] == "no_pending_approvals"
    # ... and the deciding turn stores them redacted.
    assert "bob@example.com" not in json.dumps(history)
    audited = [r for r in await stored_audit(runtime, runtime_backend) if r["endpoint"] in ("run", "approvals")]
    run, decision, _refused = audited
    assert run["pending_approvals"] == [{"tool": "cache_set", "call_id": pending["callId"]}]
    assert run["tool_calls"] == []  # nothing ran before the decision
    assert decision["approvals"] == [{"tool": "cache_set", "call_id": pending["callId"], "approved": True}]
    (call,) = decision["tool_calls"]
    assert (call["tool"], call["ok"]) == ("cache_set", True)
    assert "bob@example.com" not in json.dumps(audited)


async def test_a_denied_call_never_runs_and_the_model_is_told_why(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime(NEEDS_APPROVAL, model=tool_then_text("cache_set", ARGS))
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            first = await paused(client)
            (pending,) = first["pendingApprovals"]
            decision = {pending["callId"]: {"approved": False, "reason": "not this contact"}}
            denied = await decide(client, first["conversationId"], decision)
    assert denied.status_code == 200, denied.text
    assert denied.json()["status"] == "completed"
    assert "not this contact" in denied.json()["output"]  # the model saw the denial as the call's result
    audited = [r for r in await stored_audit(runtime, runtime_backend) if r["endpoint"] == "approvals"]
    assert audited[0]["approvals"][0]["approved"] is False
    assert audited[0]["tool_calls"] == []


async def test_decisions_are_checked_against_what_waits_and_whose_it_is(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime(NEEDS_APPROVAL, model=tool_then_text("cache_set", ARGS))
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            first = await paused(client)
            conversation_id = first["conversationId"]
            (pending,) = first["pendingApprovals"]
            unknown = await decide(client, conversation_id, {"no-such-call": {"approved": True}})
            others = await decide(
                client,
                conversation_id,
                {pending["callId"]: {"approved": True}},
                headers=auth(subject="eve@example.com"),
            )
            malformed = await decide(client, conversation_id, {pending["callId"]: {"approved": "yes please"}})
            empty = await decide(client, conversation_id, {})
            still_waiting = await decide(client, conversation_id, {pending["callId"]: {"approved": True}})
    assert unknown.status_code == 422
    assert unknown.json()["error"]["message"] == "approvals.no-such-call: no pending tool call has this id"
    assert others.status_code == 404
    assert malformed.status_code == 422
    assert "approved" in malformed.json()["error"]["message"]
    assert empty.status_code == 422
    assert still_waiting.status_code == 200  # the refusals took nothing away


async def test_a_run_that_no_conversation_can_wait_for_is_refused_with_409(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime(NEEDS_APPROVAL, model=tool_then_text("cache_set", ARGS))
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            batch = await client.post("/v1/run/batch", json={"items": [{"prompt": "remember"}]}, headers=auth())
    (item,) = batch.json()["items"]
    assert item["ok"] is False
    assert item["error"]["type"] == "approval_needs_conversation"
    assert "cache_set" in item["error"]["message"]


async def test_a_streamed_run_pauses_with_its_pending_calls_in_the_final_event(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime(NEEDS_APPROVAL, model=streaming_tool_then_words("cache_set", ARGS, ["kept"]))
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            async with client.stream("POST", "/v1/run/stream", json={"prompt": "remember"}, headers=auth()) as r:
                lines = [line async for line in r.aiter_lines() if line.startswith("data: ")]
            final = json.loads(lines[-1].removeprefix("data: "))
            (pending,) = final["pendingApprovals"]
            approved = await decide(client, final["conversationId"], {pending["callId"]: {"approved": True}})
    assert final["status"] == "awaiting_approval"
    assert pending["tool"] == "cache_set"
    assert approved.json()["output"] == "kept"
