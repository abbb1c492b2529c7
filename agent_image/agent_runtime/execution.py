"""Running the agent for one prompt: within the request timeout, under the spec's usage limits.

Declarative and code agents run the same way: the spec's model override, settings, limits, output schema and
Agentry's toolsets are passed per run, the deps are made for the run (`AgentryDeps`, or the user's own type from
them), and every tool call is recorded for the audit trail. An output schema is enforced inside the run: its
output tool (agent.py) checks each answer and asks the model again, up to spec.agent.outputRetries times.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from pydantic_ai import ApprovalRequired, CallDeferred, DeferredToolRequests, DeferredToolResults
from pydantic_ai.agent import AgentRunResult
from pydantic_ai.agent.abstract import AgentRunEvents
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.capabilities.instrumentation import Instrumentation
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.tools import ToolDefinition

from . import sdk
from .agent import RunOptions
from .security.principal import Principal
from .toolsets import AgentToolsets

log = logging.getLogger("agentry.agent")


@dataclass(frozen=True)
class ToolCall:
    """One tool the model called in a run: its name, its arguments and how the call ended."""

    tool: str
    args: dict[str, Any]
    ok: bool
    latency_ms: float


@dataclass(frozen=True)
class RunOutcome:
    """What one successful run produced."""

    run_id: str
    output: Any
    input_tokens: int
    output_tokens: int
    requests: int
    latency_ms: float
    tool_calls: tuple[ToolCall, ...] = ()
    new_messages: tuple[ModelMessage, ...] = ()
    """The run's messages after the history it was given: what a conversation stores of the turn."""

    @property
    def tokens(self) -> int:
        """Input plus output tokens, what the per-principal token limit counts."""
        return self.input_tokens + self.output_tokens

    @property
    def pending(self) -> tuple[PendingCall, ...]:
        """The tool calls waiting for a person's approval: the run paused instead of answering (else empty)."""
        if not isinstance(self.output, DeferredToolRequests):
            return ()
        return tuple(
            PendingCall(call.tool_call_id, call.tool_name, call.args_as_dict()) for call in self.output.approvals
        )

    @property
    def deferred_elsewhere(self) -> bool:
        """Whether the agent left calls for the client to run itself (pydantic-ai's CallDeferred), unsupported."""
        return isinstance(self.output, DeferredToolRequests) and bool(self.output.calls)


@dataclass(frozen=True)
class PendingCall:
    """A tool call waiting for approval: its id (the client answers with it), the tool and its arguments."""

    call_id: str
    tool: str
    args: dict[str, Any]


class RunFailed(Exception):
    """A run that failed, with the tool calls it made before failing (they are audited too)."""

    def __init__(self, error: BaseException, tool_calls: Sequence[ToolCall]) -> None:
        super().__init__(str(error))
        self.error = error
        self.tool_calls = tuple(tool_calls)


def user_prompt(prompt: str, context: dict[str, Any] | None) -> str | Sequence[str]:
    """The prompt, followed by the context as a JSON block when there is one."""
    if not context:
        return prompt
    return [prompt, "Context (JSON):\n" + json.dumps(context, ensure_ascii=False, sort_keys=True)]


class ToolCallRecorder(AbstractCapability[Any]):
    """Notes every function tool call of one run (the output tool is not a call of a tool)."""

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []

    async def wrap_tool_execute(
        self, ctx: Any, *, call: ToolCallPart, tool_def: ToolDefinition, args: Any, handler: Any
    ) -> Any:
        """Run the call, then note it with its outcome (a failure is noted and re-raised).

        The arguments noted are the model's, as it sent them (not with the defaults validation filled in).
        """
        started = time.perf_counter()
        ok: bool | None = False
        try:
            result = await handler(args)
            ok = True
            return result
        except (ApprovalRequired, CallDeferred):
            ok = None  # not a call yet: it waits for a person's approval (or for the client), and is noted then
            raise
        finally:
            if tool_def.kind == "function" and ok is not None:
                arguments = call.args_as_dict()
                latency = (time.perf_counter() - started) * 1000
                self.calls.append(ToolCall(tool=tool_def.name, args=arguments, ok=ok, latency_ms=round(latency, 3)))


#: Called with the input and output tokens of each model response as it arrives (the envelope charges them).
OnUsage = Callable[[int, int], Awaitable[None]]


class UsageMeter(AbstractCapability[Any]):
    """Reports every model response's tokens the moment it arrives, so a long run is charged as it goes."""

    def __init__(self, on_usage: OnUsage) -> None:
        self._on_usage = on_usage

    async def after_model_request(self, ctx: Any, *, request_context: Any, response: ModelResponse) -> ModelResponse:
        """Charge the response's tokens, then let the run go on with it unchanged."""
        await self._on_usage(response.usage.input_tokens, response.usage.output_tokens)
        return response


@dataclass
class LiveRun:
    """A streaming run under way: pydantic-ai's events, the tool calls so far, and its outcome once it ended."""

    run_id: str
    events: AgentRunEvents[Any]
    recorder: ToolCallRecorder
    started: float

    def outcome(self, result: AgentRunResult[Any]) -> RunOutcome:
        """The outcome of the run that produced `result` (its last event)."""
        return _outcome(self.run_id, result, self.recorder, (time.perf_counter() - self.started) * 1000)

    def partial_messages(self) -> list[ModelMessage]:
        """The messages the run made before it stopped (empty when it never started)."""
        try:
            return list(self.events.new_messages())
        except Exception:
            return []


def _outcome(run_id: str, result: AgentRunResult[Any], recorder: ToolCallRecorder, latency_ms: float) -> RunOutcome:
    usage = result.usage
    return RunOutcome(
        run_id=run_id,
        output=result.output,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        requests=usage.requests,
        latency_ms=latency_ms,
        tool_calls=tuple(recorder.calls),
        new_messages=tuple(result.new_messages()),
    )


@dataclass
class AgentRunner:
    """Runs the agent with the process's services; errors propagate (as RunFailed) for the envelope to map."""

    app: sdk.AgentApp[Any]
    services: sdk.Services
    options: RunOptions
    toolsets: AgentToolsets
    timeout: float
    instrumentation: InstrumentationSettings | None = None
    """pydantic-ai's tracing of each run (GenAI spans), when the runtime traces."""
    _entered: bool = field(default=False, init=False)

    async def start(self) -> None:
        """Enter the agent with the model its runs use, so the provider's HTTP client is reused across runs.

        Entered under an override when the spec (or a test) replaces the model: the agent's own model is then
        never set up, so a user's Agent naming `openai-chat:...` starts without OpenAI's key when it runs another.
        """
        agent, model = self.app.agent, self.options.model
        if model is None:
            await agent.__aenter__()
        else:
            with agent.override(model=model):
                await agent.__aenter__()
        self._entered = True

    async def close(self) -> None:
        """Leave the agent: the HTTP clients it entered close cleanly."""
        if self._entered:
            self._entered = False
            await self.app.agent.__aexit__(None, None, None)

    async def run(
        self,
        *,
        prompt: str | None,
        context: dict[str, Any] | None,
        admitted: AbstractAsyncContextManager[None],
        caller: Principal,
        bearer_token: str | None = None,
        history: Sequence[ModelMessage] = (),
        on_usage: OnUsage | None = None,
        decisions: DeferredToolResults | None = None,
    ) -> RunOutcome:
        """Wait to be `admitted`, then run once, both within the timeout: no request waits longer than it may take.

        The run id is a random UUID so ids reveal nothing about volume or order; the tools see it in their deps
        before the run's result is stored under it. The latency is the run's own, without the wait.
        `history` is a conversation's earlier messages, which the model sees before the prompt; `on_usage`
        is told each model response's tokens as it arrives. Without a prompt, `decisions` (a person's approvals)
        resume the run the history's pending tool calls paused.
        """
        run_id = uuid.uuid4().hex
        recorder = ToolCallRecorder()
        try:
            async with asyncio.timeout(self.timeout), admitted:
                started = time.perf_counter()
                async with self.toolsets.for_run(bearer_token=bearer_token) as toolsets:
                    result = await self.app.agent.run(
                        **self._run_arguments(
                            prompt, context, run_id=run_id, caller=caller, history=history, toolsets=toolsets
                        ),
                        capabilities=self._capabilities(recorder, on_usage),
                        deferred_tool_results=decisions,
                    )
                latency_ms = (time.perf_counter() - started) * 1000
        except BaseException as exc:
            if isinstance(exc, Exception):
                raise RunFailed(exc, recorder.calls) from exc
            raise
        return _outcome(run_id, result, recorder, latency_ms)

    @asynccontextmanager
    async def stream(
        self,
        *,
        prompt: str,
        context: dict[str, Any] | None,
        caller: Principal,
        timeout: float,
        bearer_token: str | None = None,
        history: Sequence[ModelMessage] = (),
        on_usage: OnUsage | None = None,
    ) -> AsyncIterator[LiveRun]:
        """A run whose events arrive as the model streams; the caller holds the admission slot around it.

        `timeout` is what remains of the request's time once it was admitted; pydantic-ai stops the run
        when it passes (RunTimedOut, keeping what the run completed). Leaving the block early cancels the run.
        A failure to set up the toolsets raises RunFailed here; the run's own errors are raised by its
        events, to the caller iterating them, which makes them RunFailed with `LiveRun.recorder`'s calls.
        """
        run_id = uuid.uuid4().hex
        recorder = ToolCallRecorder()
        async with AsyncExitStack() as stack:
            try:
                toolsets = await stack.enter_async_context(self.toolsets.for_run(bearer_token=bearer_token))
            except Exception as exc:
                raise RunFailed(exc, ()) from exc
            arguments = self._run_arguments(
                prompt, context, run_id=run_id, caller=caller, history=history, toolsets=toolsets
            )
            events = self.app.agent.run_stream_events(
                **arguments, capabilities=self._capabilities(recorder, on_usage), timeout=max(timeout, 0.001)
            )
            async with events as handle:
                yield LiveRun(run_id=run_id, events=handle, recorder=recorder, started=time.perf_counter())

    def _capabilities(self, recorder: ToolCallRecorder, on_usage: OnUsage | None) -> list[AbstractCapability[Any]]:
        """The run's own capabilities: the tool-call recorder, the usage meter, the instrumentation."""
        capabilities: list[AbstractCapability[Any]] = [recorder]
        if on_usage is not None:
            capabilities.append(UsageMeter(on_usage))
        # Only in a sampled trace: pydantic-ai's instrumentation costs about 2 ms of CPU per run even when its
        # spans are not recorded (tests/bench/trace_bench.py), and a run in an unsampled trace records none.
        if self.instrumentation is not None and trace.get_current_span().is_recording():
            capabilities.append(Instrumentation(settings=self.instrumentation))
        return capabilities

    def _run_arguments(
        self,
        prompt: str | None,
        context: dict[str, Any] | None,
        *,
        run_id: str,
        caller: Principal,
        history: Sequence[ModelMessage],
        toolsets: Sequence[Any],
    ) -> dict[str, Any]:
        """What every run passes to pydantic-ai, streamed or not: the spec's model, settings, limits and output.

        The output may also be DeferredToolRequests: a tool that needs approval pauses the run (toolsets.py).
        """
        return {
            "user_prompt": None if prompt is None else user_prompt(prompt, context),
            "deps": self._deps(run_id=run_id, caller=caller),
            "model": self.options.model,
            "model_settings": self.options.model_settings,
            "usage_limits": self.options.usage_limits,
            "output_type": [self.options.output_type or self.app.agent.output_type, DeferredToolRequests],
            "toolsets": toolsets,
            "message_history": list(history) or None,
        }

    def _deps(self, *, run_id: str, caller: Principal) -> Any:
        """The run's deps: AgentryDeps, the user's own type made from it, or None for an agent that takes none."""
        deps = sdk.AgentryDeps(
            services=self.services,
            caller=sdk.Caller(subject=caller.subject, roles=caller.roles),
            run_id=run_id,
            log=logging.LoggerAdapter(log, {"fields": {"runId": run_id}}),
        )
        if self.app.deps is not None:
            return self.app.deps(deps)
        return None if self.app.agent.deps_type is type(None) else deps
