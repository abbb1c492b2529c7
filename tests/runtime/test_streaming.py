"""Streamed runs on /v1/run/stream: events in order, the whole envelope, disconnects, timeouts and refusals."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from agent_runtime.settings import RuntimeSettings

from .harness import Backend, auth, serving, stored_audit, wait_for_load
from .models import conversing_model, streaming_structured, streaming_tool_then_words, streaming_words

WORDS = ["one ", "two ", "three"]


async def events_of(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """The (event, data) pairs of an SSE response, as they arrive."""
    name = "message"
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield name, json.loads(line.removeprefix("data: "))
            name = "message"


async def stream(
    client: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[httpx.Response, list[tuple[str, Any]]]:
    """POST /v1/run/stream and read it to its end: the response and every event."""
    async with client.stream("POST", "/v1/run/stream", json=body, headers=auth() if headers is None else headers) as r:
        if r.headers.get("content-type", "").startswith("text/event-stream"):
            return r, [event async for event in events_of(r)]
        await r.aread()
        return r, []


async def test_a_stream_sends_start_text_deltas_and_a_final_event_that_is_stored_and_audited(
    runtime_backend: Backend,
) -> None:
    runtime = runtime_backend.runtime(model=streaming_words(WORDS))
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            response, events = await stream(client, {"prompt": "count"})
            final = events[-1][1]
            stored = await client.get(f"/v1/results/{final['runId']}", headers=auth())
            history = await client.get(f"/v1/conversations/{final['conversationId']}", headers=auth())
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"
    assert [name for name, _ in events] == ["start", "delta", "delta", "delta", "final"]
    start = events[0][1]
    assert start == {"runId": final["runId"], "conversationId": final["conversationId"]}
    assert "".join(data["text"] for name, data in events if name == "delta") == "one two three"
    assert final["output"] == "one two three"
    assert final["usage"]["requests"] == 1
    assert stored.json()["output"] == "one two three"
    assert stored.json()["partial"] is False
    assert [m["kind"] for m in history.json()["messages"]] == ["request", "response"]
    audited = [r for r in await stored_audit(runtime, runtime_backend) if r["endpoint"] == "stream"]
    assert len(audited) == 1
    assert audited[0]["status"] == 200
    assert audited[0]["outcome"] == "ok"
    assert audited[0]["run_ids"] == [final["runId"]]
    assert audited[0]["tokens_out"] == final["usage"]["outputTokens"] > 0


async def test_tool_calls_and_their_results_are_events_and_the_audit_has_them_redacted(
    runtime_backend: Backend,
) -> None:
    args = {"key": "contact", "value": "write to bob@example.com"}
    runtime = runtime_backend.runtime(model=streaming_tool_then_words("cache_set", args, ["stored"]))
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            _, events = await stream(client, {"prompt": "remember"})
    names = [name for name, _ in events]
    assert names == ["start", "tool_call", "tool_result", "delta", "final"]
    assert events[1][1] == {"tool": "cache_set", "callId": "call-1", "args": args}  # the caller sees its own data
    assert events[2][1]["tool"] == "cache_set"
    assert events[2][1]["callId"] == "call-1"
    assert events[2][1]["ok"] is True
    assert events[-1][1]["output"] == "stored"
    (audited,) = [r for r in await stored_audit(runtime, runtime_backend) if r["endpoint"] == "stream"]
    (call,) = audited["tool_calls"]
    assert call["tool"] == "cache_set"
    assert call["ok"] is True
    assert "bob@example.com" not in json.dumps(call["args"])
    assert audited["redactions"] == {"email": 1}


async def test_a_structured_output_is_validated_before_the_final_event(runtime_backend: Backend) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    choose = streaming_structured(lambda prompt, attempt: {"n": "not a number"} if attempt == 0 else {"n": 7})
    spec = {"agent": {"outputSchema": schema}}
    with serving(runtime_backend.runtime(spec, model=choose)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            _, events = await stream(client, {"prompt": "a number"})
    assert events[-1][0] == "final"
    assert events[-1][1]["output"] == {"n": 7}
    assert events[-1][1]["usage"]["requests"] == 2  # the invalid answer was sent back, not streamed as final
    assert all(name != "delta" for name, _ in events)


async def test_a_model_failing_mid_stream_ends_it_with_an_error_event_and_a_partial_result(
    runtime_backend: Backend,
) -> None:
    runtime = runtime_backend.runtime(model=streaming_words(WORDS))
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            _, events = await stream(client, {"prompt": "explode please"})
            run_id = events[0][1]["runId"]
            stored = await client.get(f"/v1/results/{run_id}", headers=auth())
            health = (await client.get("/health")).json()
    assert [name for name, _ in events] == ["start", "delta", "error"]
    assert events[-1][1] == {"type": "internal", "message": "internal error (see the runtime's log)"}
    assert stored.json()["partial"] is True
    assert stored.json()["output"] == "one "
    assert health["inFlight"] == 0
    (audited,) = [r for r in await stored_audit(runtime, runtime_backend) if r["endpoint"] == "stream"]
    assert (audited["status"], audited["error"], audited["run_ids"]) == (500, "internal", [run_id])


async def test_a_client_that_goes_away_cancels_the_run_frees_its_slot_and_is_audited_once(
    runtime_backend: Backend,
) -> None:
    sent: list[str] = []
    words = [f"w{n} " for n in range(40)]
    runtime = runtime_backend.runtime(model=streaming_words(words, delay=0.1, sent=sent))
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            async with client.stream("POST", "/v1/run/stream", json={"prompt": "long"}, headers=auth()) as response:
                seen = []
                async for name, data in events_of(response):
                    seen.append((name, data))
                    if name == "delta":
                        break  # the client leaves after the first word
            await wait_for_load(client, in_flight=0, queued=0)
            streamed_when_freed = len(sent)
            await asyncio.sleep(0.5)
            run_id = seen[0][1]["runId"]
            stored = await client.get(f"/v1/results/{run_id}", headers=auth())
    assert len(sent) == streamed_when_freed < len(words)  # the model was stopped, not left running
    assert stored.json()["partial"] is True
    assert stored.json()["output"].startswith("w0 ")
    audited = [r for r in await stored_audit(runtime, runtime_backend) if r["endpoint"] == "stream"]
    assert len(audited) == 1
    assert (audited[0]["status"], audited[0]["error"], audited[0]["outcome"]) == (499, "client_disconnected", "error")


async def test_the_request_timeout_ends_a_stream_with_a_timeout_event(runtime_backend: Backend) -> None:
    words = [f"w{n} " for n in range(50)]
    spec = {"concurrency": {"requestTimeoutSeconds": 1}}
    runtime = runtime_backend.runtime(spec, model=streaming_words(words, delay=0.1))
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            _, events = await stream(client, {"prompt": "too long"})
    assert events[-1] == ("error", {"type": "timeout", "message": "the request did not finish within 1s"})
    assert 3 <= sum(1 for name, _ in events if name == "delta") < len(words)
    (audited,) = [r for r in await stored_audit(runtime, runtime_backend) if r["endpoint"] == "stream"]
    assert (audited["status"], audited["error"]) == (504, "timeout")


async def test_refusals_come_before_the_stream_as_plain_json_answers(runtime_backend: Backend) -> None:
    spec = {"concurrency": {"maxConcurrentRequests": 1, "maxQueuedRequests": 0}}
    slow = streaming_words([f"w{n} " for n in range(20)], delay=0.1)
    with serving(runtime_backend.runtime(spec, model=slow)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            unauthenticated, _ = await stream(client, {"prompt": "hi"}, headers={})
            forbidden, _ = await stream(client, {"prompt": "hi"}, headers=auth("read_only"))
            invalid, _ = await stream(client, {"prompt": ""})
            unknown, _ = await stream(client, {"prompt": "hi", "conversationId": "nope"})
            async with client.stream("POST", "/v1/run/stream", json={"prompt": "hold"}, headers=auth()) as held:
                holding = await wait_for_load(client, in_flight=1, queued=0)
                overloaded, _ = await stream(client, {"prompt": "hi"})
                await held.aread()
            after = (await client.get("/health")).json()
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["www-authenticate"].startswith("Bearer")
    assert forbidden.status_code == 403
    assert invalid.status_code == 422
    assert "prompt" in invalid.json()["error"]["message"]
    assert unknown.status_code == 404
    assert (holding["openStreams"], after["openStreams"]) == (1, 0)  # what the operator's health poll reads
    assert overloaded.status_code == 429
    assert overloaded.json()["error"]["type"] == "overloaded"
    assert "retry-after" in overloaded.headers


async def test_a_stream_is_a_turn_of_a_conversation_that_holds_its_lease(runtime_backend: Backend) -> None:
    with serving(runtime_backend.runtime(model=conversing_model())) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            _, first = await stream(client, {"prompt": "first"})
            conversation_id = first[-1][1]["conversationId"]
            async with client.stream(
                "POST",
                "/v1/run/stream",
                json={"prompt": "slow second", "conversationId": conversation_id},
                headers=auth(),
            ) as second:
                await wait_for_load(client, in_flight=1, queued=0)
                busy = await client.post(
                    "/v1/run", json={"prompt": "meanwhile", "conversationId": conversation_id}, headers=auth()
                )
                second_events = [event async for event in events_of(second)]
            third = await client.post(
                "/v1/run", json={"prompt": "third", "conversationId": conversation_id}, headers=auth()
            )
    assert busy.status_code == 409
    assert second_events[-1][1]["output"] == "slow second | seen: first"
    assert third.json()["output"] == "third | seen: first / slow second"


async def test_a_streams_tokens_are_charged_as_they_are_used(runtime_backend: Backend) -> None:
    spec = {"security": {"rateLimit": {"tokensPerMinute": 60}}}
    words = [f"w{n} " for n in range(30)]
    with serving(runtime_backend.runtime(spec, model=streaming_words(words))) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            _, events = await stream(client, {"prompt": "a long answer " * 10})
            after = await client.post("/v1/run", json={"prompt": "more"}, headers=auth())
    usage = events[-1][1]["usage"]
    assert usage["inputTokens"] + usage["outputTokens"] > 60
    assert after.status_code == 429
    assert after.json()["error"]["type"] == "rate_limited"


@pytest.mark.parametrize("path", ["/v1/run/stream"])
async def test_the_openapi_document_describes_the_stream(runtime_backend: Backend, path: str) -> None:
    with serving(runtime_backend.runtime(model=streaming_words(WORDS))) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            document = (await client.get("/openapi.json")).json()
    operation = document["paths"][path]["post"]
    events = operation["responses"]["200"]["content"]["text/event-stream"]["schema"]["oneOf"]
    assert [e["properties"]["event"]["const"] for e in events] == [
        "start",
        "delta",
        "tool_call",
        "tool_result",
        "final",
        "error",
    ]
    assert {"401", "403", "404", "409", "429"} <= set(operation["responses"])


async def test_a_quiet_stream_sends_keep_alive_comments_that_clients_skip(runtime_backend: Backend) -> None:
    settings = RuntimeSettings(stream_keepalive_seconds=0.1)
    runtime = runtime_backend.runtime(model=streaming_words(["slow ", "words"], delay=0.35), settings=settings)
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            async with client.stream("POST", "/v1/run/stream", json={"prompt": "wait"}, headers=auth()) as response:
                lines = [line async for line in response.aiter_lines()]
    assert lines.count(": keep-alive") >= 2
    data = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
    assert data[-1]["output"] == "slow words"
