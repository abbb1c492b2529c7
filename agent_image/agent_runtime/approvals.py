"""Human approval of tool calls: which calls a conversation's paused run waits for, and the decisions on them.

A tool that needs approval (spec.agent.toolsets[].requireApproval, or `requires_approval=True` in a code agent)
does not run when the model calls it: the run ends paused (`awaiting_approval`, with the pending calls) and its
history, kept with the conversation, ends with the model's calls. A person then answers every pending call
(`POST /v1/conversations/{id}/approvals`); the run continues from there with pydantic-ai's deferred tool results:
an approved call runs, a denied one tells the model it was denied (and why). Both are audited.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic_ai import DeferredToolResults, ToolDenied
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, RetryPromptPart, ToolReturnPart

from .errors import ApiError
from .schemas import ApprovalRequest

#: pydantic-ai's deferred tool results: what a resumed run is given.
Decisions = DeferredToolResults
#: What the model is told of a call denied without a reason.
DEFAULT_DENIAL = "A person denied this tool call."


def pending_calls(history: Sequence[ModelMessage]) -> dict[str, str]:
    """The tool calls (id: tool) the history's last answer made and nothing answered yet: what waits for a decision."""
    last = next((i for i in range(len(history) - 1, -1, -1) if isinstance(history[i], ModelResponse)), None)
    if last is None:
        return {}
    response = history[last]
    assert isinstance(response, ModelResponse)
    answered = {
        part.tool_call_id
        for message in history[last + 1 :]
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart | RetryPromptPart)
    }
    return {call.tool_call_id: call.tool_name for call in response.tool_calls if call.tool_call_id not in answered}


def decide(pending: dict[str, str], body: ApprovalRequest) -> Decisions:
    """The decisions as pydantic-ai takes them; 409 when nothing waits, 422 unless they answer exactly what waits."""
    if not pending:
        raise ApiError(409, "no_pending_approvals", "this conversation waits for no decision on a tool call")
    unknown = sorted(set(body.approvals) - set(pending))
    if unknown:
        raise ApiError(422, "invalid_request", f"approvals.{unknown[0]}: no pending tool call has this id")
    missing = sorted(set(pending) - set(body.approvals))
    if missing:
        raise ApiError(422, "invalid_request", f"approvals: no decision on pending call(s) {', '.join(missing)}")
    return DeferredToolResults(
        approvals={
            call_id: True if decision.approved else ToolDenied(decision.reason or DEFAULT_DENIAL)
            for call_id, decision in body.approvals.items()
        }
    )
