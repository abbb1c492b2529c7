"""Agent2Agent (A2A 1.0, JSON-RPC binding) with fasta2a: the public agent card, and JSON-RPC at /a2a in the envelope.

Served only when spec.protocols lists `a2a` (otherwise these paths answer 404). The card, at
`/.well-known/agent-card.json` and `/.well-known/agent.json`, is public as A2A wants (a client reads it to learn
how to authenticate); it names the agent, the URL of its JSON-RPC endpoint and, with JWT auth, the bearer scheme.

How fasta2a's parts fit. Every POST /a2a is one `Envelope.handle` (endpoint `a2a`, permission `run`): token,
role, request rate limit, one audit record and the metrics, whatever the method. fasta2a's `TaskManager` then
answers the JSON-RPC method, made for this request with two parts bound to the caller:

- the broker (`InlineBroker`) runs a submitted task at once, inside the message/send request, through
  `Envelope.run` with the caller's principal and the request's record, so token budget, admission, timeout,
  output schema, redaction, conversation lease and audit apply as on /v1/run. fasta2a's `Worker`, a background
  loop reading the broker's queue, is not used: a task taken off a queue would have lost who asked and the
  record its audit is made of. message/send therefore answers once the task ended (A2A 1.0's default,
  `returnImmediately` unset; fasta2a ignores the flag, so does this), and tasks/cancel finds nothing running to
  cancel: it answers -32002 (task not cancelable) for one's own task.
- the storage (`OwnedTasks`) is a view of this process's `TaskStore` that holds only the caller's tasks (by the
  conversations' owner hash): another principal's task id is "Task not found", like an unknown one. Tasks live in
  the process's memory, bounded in count and bytes and forgotten after spec.conversations.ttlSeconds; replicas do
  not share them (the answer of message/send carries the whole task). What replicas share is the conversation.
  A task in memory holds the message and the answer as said (the caller's own, for tasks/get); what is at rest
  (the conversation, the result, the audit record) is redacted as for /v1/run.

Mapping. An A2A context is an Agentry conversation: a message without `contextId` starts one (its id becomes the
task's `contextId`), a message with one continues the caller's conversation (another's or an unknown id is
-32602 naming `params.message.contextId`; 409's busy conversation is -32000). The message's text parts, joined,
are the prompt; one data part holding a JSON object is the run's context; file parts are -32005. The answer is
the task's `result` artifact and the agent's message in its history: a text part, or with spec.agent.outputSchema
a data part (`application/json`; a client whose `acceptedOutputModes` exclude it gets -32005); the run id and
usage are in the artifact's metadata. A run that fails upstream (5xx) is a `failed` task whose status message
says why; other refusals are JSON-RPC errors; 401, 403, 413 and every refusal with Retry-After (429, 503) keep
their HTTP status, so clients back off. Both method names are answered:
A2A 1.0's (`SendMessage`, as a2a-sdk 1.x sends) with 1.0's enums, and fasta2a's own (`message/send`).
Streaming (message/stream) and push notifications are not served; the card says so.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, Self

from fasta2a import Broker, Storage
from fasta2a.broker import TaskOperation
from fasta2a.jsonrpc_v1 import V1_METHODS, from_v1_request, to_v1
from fasta2a.schema import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    Artifact,
    CancelTaskRequest,
    GetTaskRequest,
    HttpSecurityScheme,
    Message,
    Part,
    SecurityRequirement,
    SecurityScheme,
    SendMessageRequest,
    SendMessageResponse,
    SendMessageResult,
    Skill,
    Task,
    TaskIdParams,
    TaskSendParams,
    TaskState,
    TaskStatus,
    a2a_response_ta,
    agent_card_ta,
)
from fasta2a.task_manager import TaskManager
from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentry_api.base import error_lines
from agentry_api.v1alpha1 import AuthMode

from .bodies import MAX_NESTING, nesting_depth, read_body
from .config import RuntimeConfig
from .envelope import Envelope, RequestRecord
from .errors import ApiError
from .schemas import RunRequest, RunResponse
from .security.auth import Principal
from .security.permissions import Permission

#: Where the card is: A2A 1.0's path first, then the one older clients read.
CARD_PATHS = ("/.well-known/agent-card.json", "/.well-known/agent.json")
RPC_PATH = "/a2a"
PROTOCOL_VERSION = "1.0"
#: Tasks one process remembers for tasks/get; the oldest is forgotten first, so memory never grows with traffic.
MAX_TASKS = 1000
#: Their total size (as JSON); a prompt may take a megabyte, so the count alone would not bound memory.
MAX_TASK_BYTES = 32 * 1024 * 1024

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
#: JSON-RPC's range for the server's own errors; here: Agentry refused the run (`data.type` says why).
AGENTRY_REFUSED = -32000
TASK_NOT_FOUND = -32001
TASK_NOT_CANCELABLE = -32002
PUSH_NOT_SUPPORTED = -32003
UNSUPPORTED_OPERATION = -32004
CONTENT_TYPE_NOT_SUPPORTED = -32005

#: The word each error is audited and counted as (`agentry_errors_total{kind}`).
_KINDS = {
    PARSE_ERROR: "invalid_json",
    INVALID_REQUEST: "invalid_request",
    METHOD_NOT_FOUND: "method_not_found",
    INVALID_PARAMS: "invalid_request",
    TASK_NOT_FOUND: "not_found",
    TASK_NOT_CANCELABLE: "task_not_cancelable",
    PUSH_NOT_SUPPORTED: "unsupported_operation",
    UNSUPPORTED_OPERATION: "unsupported_operation",
    CONTENT_TYPE_NOT_SUPPORTED: "unsupported_content",
}
_STREAMING = frozenset({"message/stream", "tasks/resubscribe", "SendStreamingMessage", "SubscribeToTask"})
_PUSH = frozenset(
    {
        *("tasks/pushNotification/set", "tasks/pushNotification/get"),
        *("tasks/pushNotificationConfig/list", "tasks/pushNotificationConfig/delete"),
        *("CreateTaskPushNotificationConfig", "GetTaskPushNotificationConfig"),
        *("ListTaskPushNotificationConfigs", "DeleteTaskPushNotificationConfig"),
    }
)
_UNSUPPORTED = frozenset({"tasks/list", "ListTasks"})
#: States after which a task does nothing more.
_ENDED: frozenset[TaskState] = frozenset({"completed", "canceled", "failed", "rejected"})

_SEND = TypeAdapter(SendMessageRequest)
_GET = TypeAdapter(GetTaskRequest)
_CANCEL = TypeAdapter(CancelTaskRequest)


class RpcError(Exception):
    """A JSON-RPC error: its code, a message naming the field or the cause, and the HTTP status it goes with.

    A body that is no JSON-RPC request at all is 400 (so that it cannot pass for an answer); any other error
    is a JSON-RPC answer, 200.
    """

    def __init__(self, code: int, message: str, *, kind: str | None = None, status: int = 200) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.kind = kind or _KINDS.get(code, "a2a_error")
        self.status = status


class RpcAnswer(ApiError):
    """A JSON-RPC answer reporting a failure: the envelope audits and counts it by `kind`, the client reads `body`."""

    def __init__(self, *, status: int, kind: str, message: str, body: dict[str, Any]) -> None:
        super().__init__(status, kind, message)
        self.answer = body

    def response(self) -> JSONResponse:
        """The JSON-RPC body, with its own status (not the API's error shape)."""
        return JSONResponse(self.answer, status_code=self.status)


class TaskFailed(Exception):
    """A task whose run failed upstream: it is answered as the `failed` task it became, audited as the error."""

    def __init__(self, error: ApiError, task: Task) -> None:
        super().__init__(error.message)
        self.error = error
        self.task = task


# --- the agent card --------------------------------------------------------------------------------------------


def agent_card(config: RuntimeConfig, *, url: str) -> dict[str, Any]:
    """The card of this agent whose JSON-RPC endpoint is `url`; the bearer scheme when auth is JWT."""
    outputs = [output_mode(config)]
    inputs = ["text/plain", "application/json"]
    answers = "text" if outputs == ["text/plain"] else "a JSON object matching its output schema"
    description = f"Agentry agent {config.namespace}/{config.name}: answers a message with {answers}."
    skill = Skill(
        id="run",
        name=config.name,
        description=f"{description} Text parts are the prompt, one data part (a JSON object) its context.",
        tags=["agentry"],
        input_modes=inputs,
        output_modes=outputs,
    )
    card = AgentCard(
        name=config.name,
        description=description,
        version=_version(),
        supported_interfaces=[AgentInterface(protocol_binding="JSONRPC", url=url, protocol_version=PROTOCOL_VERSION)],
        capabilities=AgentCapabilities(streaming=False, push_notifications=False, extended_agent_card=False),
        default_input_modes=inputs,
        default_output_modes=outputs,
        skills=[skill],
    )
    if config.spec.security.auth.mode == AuthMode.JWT:
        bearer = HttpSecurityScheme(scheme="Bearer", bearer_format="JWT", description="A JWT granting the run role.")
        card["security_schemes"] = {"bearer": SecurityScheme(http_auth_security_scheme=bearer)}
        card["security_requirements"] = [SecurityRequirement(schemes={"bearer": []})]
    dumped: dict[str, Any] = agent_card_ta.dump_python(card, by_alias=True, mode="json")
    return dumped


def output_mode(config: RuntimeConfig) -> str:
    """The media type of the agent's answers: JSON with spec.agent.outputSchema, text otherwise."""
    return "text/plain" if config.spec.agent.output_schema is None else "application/json"


def _version() -> str:
    """The runtime's version, the card's `version` (what a client may log about the agent it talks to)."""
    try:
        return metadata.version("agentry")
    except metadata.PackageNotFoundError:
        return "0.0.0"


# --- tasks -----------------------------------------------------------------------------------------------------


@dataclass
class _Entry:
    owner: str
    task: Task
    conversation_id: str | None
    """The conversation the client asked to continue; None when the task starts one."""
    expires: float
    size: int = 0


class TaskStore:
    """The tasks of this process, each its caller's; bounded in count and bytes, forgotten after `ttl_seconds`."""

    def __init__(
        self,
        *,
        ttl_seconds: float,
        max_tasks: int = MAX_TASKS,
        max_bytes: int = MAX_TASK_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._ttl = ttl_seconds
        self._max_tasks = max_tasks
        self._max_bytes = max_bytes
        self._bytes = 0
        self.clock = clock

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, owner: str, task: Task, *, conversation_id: str | None) -> None:
        """Keep a new task (forgetting the oldest ones beyond the bounds)."""
        self._entries[task["id"]] = _Entry(owner, task, conversation_id, expires=self.clock() + self._ttl)
        self.resize(task["id"])

    def get(self, owner: str, task_id: str) -> _Entry | None:
        """The task when `owner`'s and not expired; None otherwise, so ids of others leak nothing."""
        entry = self._entries.get(task_id)
        if entry is None or entry.owner != owner:
            return None
        if entry.expires <= self.clock():
            self.discard(task_id)
            return None
        return entry

    def of_context(self, owner: str, context_id: str) -> list[str]:
        """The ids of `owner`'s tasks in a context, oldest first."""
        return [
            key
            for key, entry in self._entries.items()
            if entry.owner == owner and entry.task["context_id"] == context_id
        ]

    def discard(self, task_id: str) -> None:
        """Forget a task (one refused before it ran: the client never learnt its id)."""
        entry = self._entries.pop(task_id, None)
        if entry is not None:
            self._bytes -= entry.size

    def resize(self, task_id: str) -> None:
        """Count a task's size again after it changed, and forget the oldest tasks beyond the bounds."""
        entry = self._entries.get(task_id)
        if entry is not None:
            size = len(json.dumps(entry.task, default=str))
            self._bytes += size - entry.size
            entry.size = size
        while self._entries and (len(self._entries) > self._max_tasks or self._bytes > self._max_bytes):
            self.discard(next(iter(self._entries)))
        now = self.clock()
        while self._entries and next(iter(self._entries.values())).expires <= now:  # in order: one TTL for all
            self.discard(next(iter(self._entries)))


class OwnedTasks(Storage[list[str]]):
    """fasta2a's Storage over the TaskStore, seeing only one caller's tasks.

    Tasks are changed in place, as fasta2a's own in-memory storage does: the task message/send answers is the
    one the broker's run completed.
    """

    def __init__(self, store: TaskStore, owner: str) -> None:
        self._store = store
        self._owner = owner

    def _entry(self, task_id: str) -> _Entry:
        entry = self._store.get(self._owner, task_id)
        if entry is None:
            raise KeyError(task_id)
        return entry

    def conversation_of(self, task_id: str) -> str | None:
        """The conversation a task continues, None when it starts one."""
        return self._entry(task_id).conversation_id

    def discard(self, task_id: str) -> None:
        """Forget a task that was refused before it ran."""
        self._store.discard(task_id)

    async def load_task(self, task_id: str, history_length: int | None = None) -> Task | None:
        """The caller's task, its history cut to the last `history_length` messages (all when None)."""
        entry = self._store.get(self._owner, task_id)
        if entry is None:
            return None
        if history_length is None or "history" not in entry.task:
            return entry.task
        task = entry.task.copy()
        task["history"] = task["history"][-history_length:] if history_length > 0 else []
        return task

    async def submit_task(self, context_id: str, message: Message) -> Task:
        """A new `submitted` task; it continues the conversation `contextId` only when the client sent one.

        fasta2a's TaskManager makes up a context id when the message has none, before this is called: the
        message itself tells the two apart. The made-up one is replaced by the conversation's id once it ran.
        """
        continued = message.get("context_id")
        task_id = uuid.uuid4().hex
        message["task_id"], message["context_id"] = task_id, context_id
        task = Task(id=task_id, context_id=context_id, status=_status("submitted"), history=[message])
        self._store.add(self._owner, task, conversation_id=continued)
        return task

    async def update_task(
        self,
        task_id: str,
        state: TaskState,
        new_artifacts: list[Artifact] | None = None,
        new_messages: list[Message] | None = None,
        *,
        status_message: Message | None = None,
        context_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Task:
        """Change a task in place: its state (with a status message), artifacts, messages, context id, metadata."""
        task = self._entry(task_id).task
        task["status"] = _status(state, status_message)
        if metadata is not None:
            task["metadata"] = metadata
        if context_id is not None:
            task["context_id"] = context_id
            for message in task.get("history", []):
                message["context_id"] = context_id
        task.setdefault("artifacts", []).extend(new_artifacts or [])
        for message in new_messages or []:
            message["task_id"], message["context_id"] = task_id, task["context_id"]
            task.setdefault("history", []).append(message)
        self._store.resize(task_id)
        return task

    async def load_context(self, context_id: str) -> list[str] | None:
        """The ids of the caller's tasks in a context (its history is the conversation, in the database)."""
        return self._store.of_context(self._owner, context_id) or None

    async def update_context(self, context_id: str, context: list[str]) -> None:
        """Nothing to store: a context's content is its conversation, which the envelope stores."""


def _status(state: TaskState, message: Message | None = None) -> TaskStatus:
    status = TaskStatus(state=state, timestamp=datetime.now(UTC).isoformat(timespec="milliseconds"))
    if message is not None:
        status["message"] = message
    return status


def _agent_message(part: Part) -> Message:
    return Message(role="agent", parts=[part], message_id=uuid.uuid4().hex)


# --- running a task --------------------------------------------------------------------------------------------


def run_request(message: Message, *, conversation_id: str | None, max_chars: int) -> RunRequest:
    """The run a message asks for: its text parts as the prompt, one data part (an object) as the context."""
    if message["role"] != "user":
        raise RpcError(INVALID_PARAMS, "params.message.role: a message to the agent is the user's")
    texts: list[str] = []
    context: dict[str, Any] | None = None
    for index, part in enumerate(message["parts"]):
        field = f"params.message.parts[{index}]"
        if "text" in part:
            texts.append(part["text"])
        elif "data" in part:
            if not isinstance(part["data"], dict) or context is not None:
                raise RpcError(INVALID_PARAMS, f"{field}.data: the context is one data part holding a JSON object")
            context = part["data"]
        elif "raw" in part or "url" in part:
            raise RpcError(CONTENT_TYPE_NOT_SUPPORTED, f"{field}: file parts are not accepted (text and data only)")
        else:
            raise RpcError(INVALID_PARAMS, f"{field}: expected a text or a data part")
    prompt = "\n".join(texts)
    if not prompt:
        raise RpcError(INVALID_PARAMS, "params.message.parts: at least one non-empty text part (the prompt)")
    if len(prompt) > max_chars:
        raise RpcError(INVALID_PARAMS, f"params.message.parts: the text is longer than {max_chars} characters")
    if conversation_id is not None and not 0 < len(conversation_id) <= 64:
        raise RpcError(INVALID_PARAMS, "params.message.contextId: from 1 to 64 characters")
    return RunRequest(prompt=prompt, context=context, conversation_id=conversation_id)


def check_accepted(accepted: list[str] | None, mode: str) -> None:
    """-32005 when the client names the media types it accepts (`acceptedOutputModes`) and `mode` is not one."""
    wildcards = {mode, "*/*", mode.split("/")[0] + "/*"}
    if accepted and not any(media_type.lower() in wildcards for media_type in accepted):
        raise RpcError(
            CONTENT_TYPE_NOT_SUPPORTED,
            f"params.configuration.acceptedOutputModes: this agent answers {mode}, which is not among them",
        )


def _answer_part(response: RunResponse) -> Part:
    """The answer: text as a text part, structured output (spec.agent.outputSchema) as a data part."""
    if isinstance(response.output, str):
        return Part(text=response.output, media_type="text/plain")
    return Part(data=response.output, media_type="application/json")


def _fails_task(error: ApiError) -> bool:
    """Whether a refused run is a `failed` task (an upstream failure) rather than an error of the request."""
    return error.status >= 500 and error.retry_after is None


@dataclass
class TaskRun:
    """Runs one caller's submitted tasks through the envelope: what the broker calls, within the request."""

    envelope: Envelope
    principal: Principal
    record: RequestRecord
    tasks: OwnedTasks
    max_chars: int
    output_mode: str

    async def __call__(self, params: TaskSendParams) -> None:
        """Run the task; completed, `failed` (TaskFailed), or forgotten when refused (RpcError or ApiError)."""
        task_id = params["id"]
        try:
            check_accepted(params.get("accepted_output_modes"), self.output_mode)
            request = run_request(
                params["message"], conversation_id=self.tasks.conversation_of(task_id), max_chars=self.max_chars
            )
        except RpcError:
            self.tasks.discard(task_id)
            raise
        await self.tasks.update_task(task_id, "working")
        try:
            response = await self.envelope.run(self.principal, request, self.record)
        except ApiError as error:
            if not _fails_task(error):
                self.tasks.discard(task_id)
                raise
            why = _agent_message(Part(text=f"{error.kind}: {error.message}"))
            raise TaskFailed(error, await self.tasks.update_task(task_id, "failed", status_message=why)) from None
        answer = _answer_part(response)
        artifact = Artifact(
            artifact_id=uuid.uuid4().hex,
            name="result",
            parts=[answer],
            metadata={"runId": response.run_id, "usage": response.usage.model_dump(by_alias=True)},
        )
        await self.tasks.update_task(
            task_id,
            "completed",
            [artifact],
            [_agent_message(answer)],
            context_id=response.conversation_id,
            metadata={"runId": response.run_id},
        )


class InlineBroker(Broker):
    """fasta2a's broker, running a task at once within the request that submitted it (see the module docstring)."""

    def __init__(self, run: TaskRun) -> None:
        super().__init__()
        self._run = run

    async def run_task(self, params: TaskSendParams) -> None:
        """Run the task now, in this request; its errors propagate to the message/send answer."""
        await self._run(params)

    async def cancel_task(self, params: TaskIdParams) -> None:
        """Never called: tasks/cancel is answered before, since a task runs only within its message/send."""
        raise NotImplementedError("a task runs within its message/send request and cannot be canceled")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        return None

    async def receive_task_operations(self) -> AsyncIterator[TaskOperation]:
        """None: nothing is queued (no fasta2a Worker loop reads this broker)."""
        operations: tuple[TaskOperation, ...] = ()
        for operation in operations:
            yield operation


# --- JSON-RPC --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One JSON-RPC request: its id, its method as fasta2a names it, whether it came with A2A 1.0's names."""

    id: str | int | None
    method: str
    document: dict[str, Any]
    v1: bool

    def answer(self, response: Mapping[str, Any]) -> dict[str, Any]:
        """A fasta2a response as JSON, its result in 1.0's enums when the request used 1.0's names."""
        body: dict[str, Any] = a2a_response_ta.dump_python(response, by_alias=True, mode="json")  # type: ignore[arg-type]
        if self.v1 and "result" in body:
            body["result"] = to_v1(body["result"])
        return body

    def error(self, error: RpcError) -> RpcAnswer:
        """The JSON-RPC error answer, raised so that the envelope audits it as an error."""
        body = _error_body(self.id, error)
        return RpcAnswer(status=error.status, kind=error.kind, message=error.message, body=body)


def _error_body(rpc_id: str | int | None, error: RpcError) -> dict[str, Any]:
    payload = {"code": error.code, "message": error.message, "data": {"type": error.kind}}
    return {"jsonrpc": "2.0", "id": rpc_id, "error": payload}


def parse_call(raw: bytes) -> Call:
    """The request in `raw`; RpcError (400) when it is no JSON-RPC request, (200) for an unknown method."""
    if nesting_depth(raw) > MAX_NESTING:
        raise RpcError(PARSE_ERROR, f"request body is nested deeper than {MAX_NESTING} levels", status=400)
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise RpcError(PARSE_ERROR, f"request body is not valid JSON: {exc}", status=400) from None
    if not isinstance(document, dict):
        raise RpcError(INVALID_REQUEST, "(root): expected a JSON-RPC request object", status=400)
    rpc_id = document.get("id")
    if isinstance(rpc_id, bool) or not isinstance(rpc_id, str | int | None):
        raise RpcError(INVALID_REQUEST, "id: expected a string, an integer or null", status=400)
    if document.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, 'jsonrpc: must be "2.0"', status=400)
    method = document.get("method")
    if not isinstance(method, str):
        raise RpcError(INVALID_REQUEST, "method: expected a string", status=400)
    if not isinstance(document.get("params", {}), dict):
        raise RpcError(INVALID_REQUEST, "params: expected an object", status=400)
    v1 = from_v1_request(document)
    return Call(id=rpc_id, method=V1_METHODS.get(method, method), document=v1 or document, v1=v1 is not None)


def _validated(adapter: TypeAdapter[Any], call: Call) -> Any:
    try:
        return adapter.validate_python(call.document)
    except ValidationError as exc:
        raise RpcError(INVALID_PARAMS, "; ".join(error_lines(exc))) from None


def _refused(error: ApiError) -> RpcError:
    """The JSON-RPC error of a run refused for the request's sake (4xx), naming the field where there is one."""
    if error.kind == "not_found":
        return RpcError(INVALID_PARAMS, f"params.message.contextId: {error.message}", kind=error.kind)
    code = INVALID_PARAMS if error.kind == "invalid_request" else AGENTRY_REFUSED
    return RpcError(code, error.message, kind=error.kind)


def _keeps_http_status(error: ApiError) -> bool:
    """Refusals whose HTTP status a client acts on: authentication, body size, back off (Retry-After)."""
    return error.status in (401, 403, 413) or error.retry_after is not None


class A2AEndpoint:
    """POST /a2a: each call in the envelope, answered by a fasta2a TaskManager bound to the caller."""

    def __init__(self, envelope: Envelope) -> None:
        runtime = envelope.runtime
        self.envelope = envelope
        self.store = TaskStore(ttl_seconds=runtime.config.spec.conversations.ttl_seconds)
        self._max_bytes = runtime.settings.max_body_bytes
        self._max_chars = runtime.settings.max_prompt_chars
        self._output_mode = output_mode(runtime.config)

    async def handle(self, request: Request) -> Response:
        """The JSON-RPC answer; the envelope's own status for what it refuses."""

        async def work(principal: Principal, record: RequestRecord) -> Response:
            raw = await read_body(request, max_bytes=self._max_bytes)
            record.request_bytes = len(raw)
            try:
                call = parse_call(raw)
            except RpcError as error:
                raise RpcAnswer(
                    status=error.status, kind=error.kind, message=error.message, body=_error_body(None, error)
                ) from None
            try:
                return JSONResponse(await self._dispatch(call, principal, record))
            except RpcError as error:
                raise call.error(error) from None

        return await self.envelope.handle(request, endpoint="a2a", permission=Permission.RUN, work=work)

    async def _dispatch(self, call: Call, principal: Principal, record: RequestRecord) -> dict[str, Any]:
        tasks = OwnedTasks(self.store, self.envelope.runtime.conversations.owner_of(principal.subject))
        run = TaskRun(self.envelope, principal, record, tasks, self._max_chars, self._output_mode)
        manager = TaskManager(broker=InlineBroker(run), storage=tasks)
        if call.method == "message/send":
            return await self._send(call, manager)
        if call.method == "tasks/get":
            return self._found(call, call.answer(await manager.get_task(_validated(_GET, call))))
        if call.method == "tasks/cancel":
            return await self._cancel(call, tasks)
        raise _unserved(call.method)

    async def _send(self, call: Call, manager: TaskManager) -> dict[str, Any]:
        try:
            return call.answer(await manager.send_message(_validated(_SEND, call)))
        except TaskFailed as failed:
            body = call.answer(
                SendMessageResponse(jsonrpc="2.0", id=call.id, result=SendMessageResult(task=failed.task))
            )
            raise RpcAnswer(status=200, kind=failed.error.kind, message=failed.error.message, body=body) from None
        except ApiError as error:
            if _keeps_http_status(error):
                raise
            raise _refused(error) from None

    def _found(self, call: Call, body: dict[str, Any]) -> dict[str, Any]:
        """The answer, raised as an error when fasta2a's is one (so that it is audited as one)."""
        if "error" in body:
            raise call.error(
                RpcError(body["error"]["code"], f"{body['error']['message']}: no task of yours with that id")
            )
        return body

    async def _cancel(self, call: Call, tasks: OwnedTasks) -> dict[str, Any]:
        params = _validated(_CANCEL, call)["params"]
        task = await tasks.load_task(params["id"])
        if task is None:
            raise RpcError(TASK_NOT_FOUND, f"Task not found: no task of yours with id {params['id']!r}")
        state = task["status"]["state"]
        raise RpcError(
            TASK_NOT_CANCELABLE,
            f"Task not cancelable: it is {state}"
            + ("" if state in _ENDED else " within its message/send, which cannot be interrupted from another request"),
        )


def _unserved(method: str) -> RpcError:
    if method in _STREAMING:
        return RpcError(UNSUPPORTED_OPERATION, f"{method}: streaming is not served over A2A here; use message/send")
    if method in _PUSH:
        return RpcError(PUSH_NOT_SUPPORTED, f"{method}: push notifications are not supported")
    if method in _UNSUPPORTED:
        return RpcError(UNSUPPORTED_OPERATION, f"{method}: not supported; tasks/get reads one task by its id")
    return RpcError(METHOD_NOT_FOUND, f"Method not found: {method!r} (served: message/send, tasks/get, tasks/cancel)")


# --- routes and document ---------------------------------------------------------------------------------------


def a2a_routes(envelope: Envelope) -> list[Route]:
    """The card and the JSON-RPC endpoint (app.py adds them when spec.protocols lists a2a)."""
    config = envelope.runtime.config

    async def card(request: Request) -> Response:
        return JSONResponse(agent_card(config, url=str(request.base_url).rstrip("/") + RPC_PATH))

    endpoint = A2AEndpoint(envelope)
    return [
        *(Route(path, card, methods=["GET"]) for path in CARD_PATHS),
        Route(RPC_PATH, endpoint.handle, methods=["POST"]),
    ]


_ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
_RPC_REQUEST = {
    "type": "object",
    "description": "A JSON-RPC 2.0 request: methods SendMessage (or message/send), GetTask (tasks/get), "
    "CancelTask (tasks/cancel), params as A2A 1.0 defines them.",
    "required": ["jsonrpc", "method"],
    "properties": {
        "jsonrpc": {"const": "2.0"},
        "id": {"type": ["string", "integer", "null"]},
        "method": {"type": "string"},
        "params": {"type": "object"},
    },
}
_RPC_ANSWER = {
    "type": "object",
    "description": "A JSON-RPC 2.0 answer: `result` (for message/send `{task}`), or `error` {code, message, data}.",
    "required": ["jsonrpc"],
    "properties": {"jsonrpc": {"const": "2.0"}, "result": {}, "error": {"type": "object"}},
}
_RPC_STATUSES = {
    "400": "Not a JSON-RPC request (a JSON-RPC error answer says why).",
    "401": "Missing or invalid bearer token; WWW-Authenticate says which.",
    "403": "The caller's roles do not grant run.",
    "413": "Body too large.",
    "429": "Rate limit, token budget or queue full; see Retry-After.",
    "503": "Draining or a dependency is down; see Retry-After.",
}


def a2a_openapi(config: RuntimeConfig) -> dict[str, Any]:
    """The A2A path items for the OpenAPI document."""
    json_body: Callable[[Mapping[str, Any]], dict[str, Any]] = lambda schema: {  # noqa: E731
        "application/json": {"schema": dict(schema)}
    }
    errors = {
        code: {"description": text, "content": json_body(_RPC_ANSWER if code == "400" else _ERROR_REF)}
        for code, text in _RPC_STATUSES.items()
    }
    for code, header in (("401", "WWW-Authenticate"), ("429", "Retry-After"), ("503", "Retry-After")):
        errors[code]["headers"] = {header: {"required": True, "schema": {"type": "string"}}}
    rpc = {
        "operationId": "a2aJsonRpc",
        "summary": "A2A 1.0 JSON-RPC: send a message (a conversation's turn), read or cancel a task.",
        "security": [{"bearer": []}],
        "requestBody": {"required": True, "content": json_body(_RPC_REQUEST)},
        "responses": {"200": {"description": "The JSON-RPC answer.", "content": json_body(_RPC_ANSWER)}} | errors,
    }
    card = {
        "summary": "The A2A agent card (public).",
        "security": [],
        "responses": {"200": {"description": "The card.", "content": json_body({"type": "object"})}},
    }
    paths: dict[str, Any] = {RPC_PATH: {"post": rpc}}
    for path, operation_id in zip(CARD_PATHS, ("a2aAgentCard", "a2aAgentCardLegacy"), strict=True):
        paths[path] = {"get": {"operationId": operation_id, **card}}
    return paths
