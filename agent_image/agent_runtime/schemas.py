"""Wire bodies of the HTTP API as pydantic models; the OpenAPI document is generated from them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Wire(BaseModel):
    """camelCase on the wire, unknown fields refused so that a typo is an error rather than ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class RunItem(Wire):
    """One agent run of a batch: no conversation (its items run at once, so turns of one would conflict)."""

    prompt: str = Field(
        min_length=1, description="The user's message (its longest length, set by the runtime, is in the document)."
    )
    context: dict[str, Any] | None = Field(None, description="Structured context given to the model as JSON.")


class RunRequest(RunItem):
    """One agent run, a turn of a conversation."""

    conversation_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Continue this conversation (the model sees its history); omit to start a new one. "
        "404 when the caller has no such conversation (or it expired), 409 while another of its turns runs.",
    )


class BatchRequest(Wire):
    """Several independent runs; the limit on items is set by the runtime (100 by default, in the document)."""

    items: list[RunItem] = Field(min_length=1, description="Runs to execute, answered in the same order.")


class Cost(Wire):
    """What a run's tokens cost at the agent's prices (spec.agent.pricing)."""

    amount: float = Field(description="In `currency`, rounded to a billionth of it.")
    currency: str = Field(description="ISO 4217 code, as in spec.agent.pricing.")


class Usage(Wire):
    """Tokens and model requests one run used, and their cost when the agent has a price table."""

    input_tokens: int
    output_tokens: int
    requests: int
    cost: Cost | None = Field(None, description="Null when the agent has no spec.agent.pricing.")


class PendingApproval(Wire):
    """A tool call the run paused on: a person approves or denies it by its `callId`."""

    call_id: str
    tool: str
    args: dict[str, Any]


#: How a run ended: with the agent's answer, or paused on tool calls that need a person's approval.
RunStatus = Literal["completed", "awaiting_approval"]


class RunResponse(Wire):
    """The answer of one run; `output` is a string, or an object matching the agent's output schema."""

    run_id: str
    output: Any
    usage: Usage
    latency_ms: float
    conversation_id: str | None = Field(
        None, description="The conversation this run was a turn of; send it back to continue (null in batches)."
    )
    status: RunStatus = Field(
        "completed",
        description="`awaiting_approval`: the run paused (output null) on `pendingApprovals`; answer them with "
        "POST /v1/conversations/{conversationId}/approvals to continue.",
    )
    pending_approvals: list[PendingApproval] = Field(
        [], description="The tool calls waiting for a person's decision (awaiting_approval only)."
    )


class Decision(Wire):
    """A person's decision on one pending tool call."""

    approved: bool
    reason: str | None = Field(
        None, max_length=1000, description="Why it was denied; the model is told (a default message otherwise)."
    )


class ApprovalRequest(Wire):
    """Decisions on every pending tool call of a conversation, by call id; the run then continues."""

    approvals: dict[str, Decision] = Field(min_length=1, max_length=64)


class StreamStart(Wire):
    """`start`, the first event of a stream: the run's id and its conversation, known once admitted."""

    run_id: str
    conversation_id: str | None


class StreamDelta(Wire):
    """`delta`: text the model just wrote; the deltas joined are the text answer."""

    text: str


class StreamToolCall(Wire):
    """`tool_call`: a function tool the model called, with its arguments."""

    tool: str
    call_id: str
    args: dict[str, Any]


class StreamToolResult(Wire):
    """`tool_result`: what the tool returned, or (ok false) the error the model was shown."""

    tool: str | None
    call_id: str
    ok: bool
    content: Any


class ConversationResponse(Wire):
    """A stored conversation: its history in pydantic-ai's message format, redacted when redaction is on."""

    conversation_id: str
    messages: list[dict[str, Any]]


class ErrorBody(Wire):
    """What went wrong; `type` is a stable word, `message` names the field or the cause."""

    type: str
    message: str


class ErrorResponse(Wire):
    """Every error answer."""

    error: ErrorBody


class BatchItem(Wire):
    """The outcome of one batch item: a result or an error, never neither."""

    index: int
    ok: bool
    result: RunResponse | None = None
    error: ErrorBody | None = None


class BatchResponse(Wire):
    """One item per request item, in order."""

    items: list[BatchItem]
    succeeded: int
    failed: int


class StoredResult(Wire):
    """A stored run, anonymised before it was written."""

    run_id: str
    prompt: str
    context: Any = None
    output: Any
    usage: Usage
    latency_ms: float
    principal: str
    created_at: str
    partial: bool = Field(
        False, description="The run did not complete (its stream was closed or failed): `output` is what it wrote."
    )
    status: RunStatus = "completed"
    pending_approvals: list[PendingApproval] = Field(
        [], description="The calls the run paused on, their arguments anonymised (awaiting_approval only)."
    )
