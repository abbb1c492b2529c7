"""A2A on the real runtime, called with Google's a2a-sdk client (1.x, A2A 1.0): card, tasks, contexts, envelope."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, AuthInterceptor, Client, ClientConfig, ClientFactory, CredentialService
from a2a.client.client import ClientCallContext
from a2a.client.errors import A2AClientError
from a2a.types import CancelTaskRequest, GetTaskRequest, Message, Part, Role, SendMessageRequest, Task, TaskState
from a2a.utils.errors import InvalidParamsError, TaskNotCancelableError, TaskNotFoundError
from fasta2a import schema as fasta2a_schema
from google.protobuf.json_format import MessageToDict, ParseDict

from agent_runtime.a2a import TaskStore

from .harness import Backend, auth, serving, stored_audit, token
from .models import conversing_model, echo_model, structured_model

SCHEMA = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}


class Bearer(CredentialService):
    """A fixed token for the card's `bearer` scheme (the interceptor adds it only where the card asks for it)."""

    def __init__(self, value: str) -> None:
        self.value = value

    async def get_credentials(self, security_scheme_name: str, context: ClientCallContext | None) -> str | None:
        """The token, for the scheme the card names."""
        return self.value if security_scheme_name == "bearer" else None


@asynccontextmanager
async def a2a_client(url: str, *, subject: str = "alice@example.com") -> AsyncIterator[Client]:
    """a2a-sdk's client made from the agent's card, authenticating as `subject` through the card's scheme."""
    factory = ClientFactory(ClientConfig(streaming=False))
    client = await factory.create_from_url(url, interceptors=[AuthInterceptor(Bearer(token(subject=subject)))])
    try:
        yield client
    finally:
        await client.close()


async def send(client: Client, text: str, *, context_id: str | None = None, data: Any = None) -> Task:
    """message/send with one text part (and a data part when there is `data`); the task it answers with."""
    parts = [Part(text=text), *([ParseDict({"data": data}, Part())] if data is not None else [])]
    message = Message(role=Role.ROLE_USER, message_id=uuid.uuid4().hex, parts=parts, context_id=context_id or "")
    answers = [answer async for answer in client.send_message(SendMessageRequest(message=message))]
    assert len(answers) == 1
    assert answers[0].HasField("task"), answers[0]
    return answers[0].task


def answer_of(task: Task) -> dict[str, Any]:
    """The one part of the task's `result` artifact, as JSON."""
    (artifact,) = task.artifacts
    assert artifact.name == "result"
    (part,) = artifact.parts
    shown: dict[str, Any] = MessageToDict(part)
    return shown


async def rpc(client: httpx.AsyncClient, method: str, params: Any, **headers: str) -> httpx.Response:
    """A raw JSON-RPC call, as a client of fasta2a's own method names sends it."""
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
    return await client.post("/a2a", json=body, headers=headers or auth())


def message(*parts: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A user message in fasta2a's JSON (A2A 1.0 shapes, fasta2a's enums)."""
    return {"message": {"role": "user", "messageId": uuid.uuid4().hex, "parts": list(parts), **fields}}


async def test_the_card_is_public_and_tells_the_client_where_and_how(tmp_path: Any) -> None:
    with serving(Backend(data_dir=tmp_path).runtime(model=echo_model())) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            card = await A2ACardResolver(http, url).get_agent_card()
            legacy = await http.get("/.well-known/agent.json")
            current = await http.get("/.well-known/agent-card.json")
            document = (await http.get("/openapi.json")).json()
    assert card.name == "agent"
    assert "test/agent" in card.description
    (interface,) = card.supported_interfaces
    assert (interface.url, interface.protocol_binding, interface.protocol_version) == (f"{url}/a2a", "JSONRPC", "1.0")
    assert card.security_schemes["bearer"].http_auth_security_scheme.scheme == "Bearer"
    assert [list(requirement.schemes) for requirement in card.security_requirements] == [["bearer"]]
    assert not card.capabilities.streaming
    assert [skill.output_modes for skill in card.skills] == [["text/plain"]]
    assert legacy.status_code == current.status_code == 200
    assert legacy.json() == current.json()
    assert {"/a2a", "/.well-known/agent.json", "/.well-known/agent-card.json"} <= set(document["paths"])


async def test_without_a2a_in_spec_protocols_its_paths_are_404(tmp_path: Any) -> None:
    runtime = Backend(data_dir=tmp_path).runtime({"protocols": ["openai"]}, model=echo_model())
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            answers = [await http.get(path) for path in ("/.well-known/agent.json", "/.well-known/agent-card.json")]
            answers.append(await rpc(http, "message/send", message({"text": "hi"})))
            document = (await http.get("/openapi.json")).json()
    assert [answer.status_code for answer in answers] == [404, 404, 404]
    assert not {"/a2a", "/.well-known/agent.json"} & set(document["paths"])


async def test_a_message_in_a_context_continues_its_conversation(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime(model=conversing_model())
    with serving(runtime) as url:
        async with a2a_client(url) as client:
            first = await send(client, "first")
            second = await send(client, "second", context_id=first.context_id)
            fresh = await send(client, "unrelated")
            read = await client.get_task(GetTaskRequest(id=second.id))
    assert first.status.state == TaskState.TASK_STATE_COMPLETED
    assert answer_of(first) == {"text": "first | seen: ", "mediaType": "text/plain"}
    assert answer_of(second)["text"] == "second | seen: first"  # the model was shown the first turn
    assert second.context_id == first.context_id
    assert answer_of(fresh)["text"] == "unrelated | seen: "
    assert fresh.context_id != first.context_id
    assert [m.role for m in second.history] == [Role.ROLE_USER, Role.ROLE_AGENT]
    assert read == second
    audited = [record for record in await stored_audit(runtime, runtime_backend) if record["endpoint"] == "a2a"]
    assert [(r["principal"], r["status"], r["outcome"]) for r in audited] == [
        ("<email>", 200, "ok")
    ] * 4  # the subject is an email: redacted
    assert [r.get("conversation_id") for r in audited] == [first.context_id] * 2 + [fresh.context_id, None]
    assert [len(r["run_ids"]) for r in audited] == [1, 1, 1, 0]


async def test_another_principals_context_and_task_are_not_found_and_its_history_unseen(tmp_path: Any) -> None:
    runtime = Backend(data_dir=tmp_path).runtime(model=conversing_model())
    with serving(runtime) as url:
        async with a2a_client(url) as alice, a2a_client(url, subject="bob@example.com") as bob:
            mine = await send(alice, "mine")
            with pytest.raises(InvalidParamsError) as stolen:
                await send(bob, "let me in", context_id=mine.context_id)
            with pytest.raises(TaskNotFoundError) as peeked:
                await bob.get_task(GetTaskRequest(id=mine.id))
            with pytest.raises(TaskNotFoundError):
                await bob.cancel_task(CancelTaskRequest(id=mine.id))
            with pytest.raises(TaskNotCancelableError):
                await alice.cancel_task(CancelTaskRequest(id=mine.id))
            still_mine = await send(alice, "still mine?", context_id=mine.context_id)
            bobs_own = await send(bob, "hello")
    assert "params.message.contextId: no conversation with id" in str(stolen.value)
    assert "Task not found" in str(peeked.value)
    assert answer_of(still_mine)["text"] == "still mine? | seen: mine"
    assert answer_of(bobs_own)["text"] == "hello | seen: "


async def test_the_envelope_refuses_with_http_401_and_403_and_audits_each_call(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime(model=echo_model())
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            anonymous = await http.post("/a2a", json={"jsonrpc": "2.0", "id": 1, "method": "SendMessage"})
            reader = await rpc(http, "message/send", message({"text": "hi"}), **auth("read_only"))
        card = httpx.get(f"{url}/.well-known/agent-card.json").json()
        async with httpx.AsyncClient() as http:
            client = ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(
                await A2ACardResolver(http, url).get_agent_card()
            )
            with pytest.raises(A2AClientError, match="HTTP Error 401"):
                await send(client, "no credentials")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert reader.status_code == 403
    assert reader.json()["error"]["type"] == "forbidden"
    assert card["name"] == "agent"  # the card itself needs no token
    audited = [(r["endpoint"], r["status"], r["outcome"]) for r in await stored_audit(runtime, runtime_backend)]
    assert audited == [("a2a", 401, "error"), ("a2a", 403, "error"), ("a2a", 401, "error")]


async def test_structured_output_comes_back_as_a_data_part_and_a_data_part_is_the_context(tmp_path: Any) -> None:
    seen: list[str] = []

    def choose(prompt: str, attempt: int) -> dict[str, Any]:
        seen.append(prompt)
        return {"label": "billing"}

    agent = {"model": "test", "outputSchema": SCHEMA}
    runtime = Backend(data_dir=tmp_path).runtime(model=structured_model(choose), agent=agent)
    with serving(runtime) as url:
        async with a2a_client(url) as client:
            task = await send(client, "classify", data={"ticket": "T-42"})
        async with httpx.AsyncClient() as http:
            card = await A2ACardResolver(http, url).get_agent_card()
    assert answer_of(task) == {"data": {"label": "billing"}, "mediaType": "application/json"}
    assert card.default_output_modes == ["application/json"]
    assert seen == ['classify Context (JSON):\n{"ticket": "T-42"}']  # the data part is the run's context


async def test_a_run_failing_upstream_is_a_failed_task_audited_as_the_error(tmp_path: Any) -> None:
    backend = Backend(data_dir=tmp_path)
    runtime = backend.runtime(model=echo_model())
    with serving(runtime) as url:
        async with a2a_client(url) as client:
            failed = await send(client, "explode")
            read = await client.get_task(GetTaskRequest(id=failed.id))
    assert failed.status.state == TaskState.TASK_STATE_FAILED
    assert failed.status.message.parts[0].text.startswith("internal: ")
    assert read.status.state == TaskState.TASK_STATE_FAILED
    audited = [r for r in await stored_audit(runtime, backend) if r["endpoint"] == "a2a"]
    assert [(r["outcome"], r["error"], r["status"]) for r in audited][0] == ("error", "internal", 200)


@pytest.mark.parametrize(
    ("method", "params", "status", "code", "says"),
    [
        ("message/send", message({"data": {"a": 1}}), 200, -32602, "at least one non-empty text part"),
        ("message/send", message({"text": "x"}, {"url": "http://files/a.pdf"}), 200, -32005, "parts[1]: file parts"),
        ("message/send", message({"text": "x"}, contextId="nope"), 200, -32602, "params.message.contextId: no conv"),
        ("message/send", {"message": {"role": "user"}}, 200, -32602, "params.message.messageId: Field required"),
        ("message/stream", message({"text": "x"}), 200, -32004, "streaming is not served"),
        (
            "message/send",
            {**message({"text": "x"}), "configuration": {"acceptedOutputModes": ["application/json"]}},
            200,
            -32005,
            "acceptedOutputModes: this agent answers text/plain, which is not among them",
        ),
        ("tasks/get", {"id": "unknown"}, 200, -32001, "Task not found"),
        ("tasks/cancel", {"id": "unknown"}, 200, -32001, "Task not found"),
        ("tasks/pushNotification/set", {}, 200, -32003, "push notifications are not supported"),
        ("agents/dance", {}, 200, -32601, "Method not found: 'agents/dance'"),
        ("message/send", [1], 400, -32600, "params: expected an object"),
    ],
)
async def test_json_rpc_errors_name_the_cause(
    tmp_path: Any, method: str, params: Any, status: int, code: int, says: str
) -> None:
    with serving(Backend(data_dir=tmp_path).runtime(model=echo_model())) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            answer = await rpc(http, method, params)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["jsonrpc"] == "2.0"
    assert body["error"]["code"] == code
    assert says in body["error"]["message"]


async def test_fasta2a_method_names_work_too_and_an_ended_task_is_not_cancelable(tmp_path: Any) -> None:
    with serving(Backend(data_dir=tmp_path).runtime(model=echo_model())) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            accepting = {"configuration": {"acceptedOutputModes": ["application/json", "text/*"]}}
            sent = await rpc(http, "message/send", {**message({"text": "hello"}), **accepting})
            task = sent.json()["result"]["task"]
            canceled = await rpc(http, "tasks/cancel", {"id": task["id"]})
            not_json = await http.post("/a2a", content=b"{", headers=auth())
    assert task["status"]["state"] == "completed"  # fasta2a's enums for fasta2a's names, 1.0's for 1.0's
    assert task["artifacts"][0]["parts"] == [{"text": "echo: hello", "mediaType": "text/plain"}]
    assert canceled.json()["error"]["code"] == -32002
    assert "it is completed" in canceled.json()["error"]["message"]
    assert (not_json.status_code, not_json.json()["error"]["code"]) == (400, -32700)


async def test_a_busy_context_is_a_json_rpc_error_and_the_rate_limit_an_http_429(tmp_path: Any) -> None:
    backend = Backend(data_dir=tmp_path)
    runtime = backend.runtime(model=conversing_model())
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            context = (await rpc(http, "message/send", message({"text": "start"}))).json()["result"]["task"][
                "contextId"
            ]
            racing = await asyncio.gather(
                *(rpc(http, "message/send", message({"text": f"slow {n}"}, contextId=context)) for n in range(2))
            )
    bodies = sorted((r.json() for r in racing), key=lambda body: "error" in body)
    assert [r.status_code for r in racing] == [200, 200]
    assert bodies[0]["result"]["task"]["status"]["state"] == "completed"
    assert bodies[1]["error"] == {
        "code": -32000,
        "message": "another turn of this conversation is running; retry after it",
        "data": {"type": "conversation_busy"},
    }
    audited = [(r["outcome"], r.get("error")) for r in await stored_audit(runtime, backend)]
    assert sorted(audited, key=str) == [("error", "conversation_busy"), ("ok", None), ("ok", None)]

    limited = Backend(data_dir=tmp_path / "limited").runtime(
        {"security": {"rateLimit": {"requestsPerMinute": 1}}}, model=echo_model()
    )
    with serving(limited) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            first = await rpc(http, "message/send", message({"text": "one"}))
            second = await rpc(http, "message/send", message({"text": "two"}))
    assert first.status_code == 200
    assert second.status_code == 429
    assert int(second.headers["retry-after"]) >= 1


def test_the_task_store_keeps_each_callers_tasks_within_its_bounds() -> None:
    now = [0.0]
    store = TaskStore(ttl_seconds=60, max_tasks=3, max_bytes=2000, clock=lambda: now[0])

    def task(name: str, size: int = 0) -> fasta2a_schema.Task:
        return {"id": name, "context_id": "c", "status": {"state": "completed"}, "metadata": {"pad": "x" * size}}

    for name in ("a", "b", "c", "d"):
        store.add("alice", task(name), conversation_id=None)
    assert [store.get("alice", name) is not None for name in "abcd"] == [False, True, True, True]  # count
    assert store.get("bob", "d") is None  # another caller's id is not found
    store.add("alice", task("big", size=1900), conversation_id=None)
    assert [store.get("alice", name) is not None for name in ("c", "d", "big")] == [False, False, True]  # bytes
    now[0] += 61
    assert store.get("alice", "big") is None  # expired
    assert len(store) == 0
