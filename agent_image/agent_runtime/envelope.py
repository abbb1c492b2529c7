"""The request envelope: the ordered steps every endpoint goes through, each written once, here.

For every request, in this order (DESIGN.md, "The request envelope"):

1. open: a draining runtime refuses new work with 503 and Retry-After (admission.py).
2. authenticate: the bearer token proves who calls, 401 with a challenge otherwise (security/guard.py).
3. authorize: the caller's roles hold the endpoint's permission, 403 otherwise.
4. request rate limit: the caller's requests per minute, 429 with Retry-After when over.

Then the endpoint's own work (routes.py: read and validate the body), which for each agent run asks for:

5. token rate and budgets: 429 when the caller already spent its tokens for this minute (`rate_limited`),
   or a budget of the caller or the agent for this day or month is spent (`budget_exceeded`, budgets.py).
   conversation (conversations.py): a new id, or the lease and history of the caller's conversation:
   404 when it has none with that id, 409 while another turn holds it; released whatever happens below.
6. admission: a slot, waiting in a bounded queue; 429 with Retry-After when the queue is full.
7. run: the agent within the request timeout, which covers the wait in 6 (504), its output validated
   against the schema with retries (execution.py); each model response's tokens are priced (pricing.py)
   when the agent has a price table, and charged to the caller's token rate and to the budgets as it arrives.
8. redact: PII out of the prompt, the context, the output and the arguments of each tool call.
9. store: the redacted result into the database, 503 when it fails (results.py); a conversation's
   history with the turn's (redacted) messages, trimmed to spec.conversations, which releases its lease.

Whatever happened (success, refusal, a bug), the caller gets a JSON answer, and then:

10. audit: exactly one hash-chained record, with the tool calls of its runs (also of a run that failed)
    and the conversation id of a turn.
11. metrics: the request counted by endpoint and status, an error by kind; one access-log line.
12. trace: the request's span (tracing.py), opened before 1 with the caller's traceparent and ended here;
    2-3, 4 and 6 are its child spans, and the run's own spans (pydantic-ai's) and calls out nest inside it.

/metrics, when spec.security.metrics.requireAuth asks for a token, goes through 2 and 3 only (`scrape`):
a scrape is neither rate-limited, audited nor counted, since one record per scrape would drown the trail.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import Span
from pydantic_ai.messages import ModelMessage
from pydantic_ai.run import AgentRunResultEvent
from starlette.requests import Request
from starlette.responses import Response

from . import results
from .approvals import Decisions, decide, pending_calls
from .conversations import Turn
from .errors import ApiError, from_agent_error
from .execution import LiveRun, OnUsage, RunFailed, RunOutcome, ToolCall
from .pricing import wire_amount
from .runtime import Runtime
from .schemas import ApprovalRequest, BatchItem, ErrorBody, RunItem, RunRequest, RunResponse, StoredResult
from .security.auth import Principal
from .security.budgets import SCOPE_FIELDS
from .security.permissions import Permission
from .streaming import CLIENT_CLOSED, Completed, Failed, RunEvent, StreamResponse, text_of

log = logging.getLogger(__name__)
access_log = logging.getLogger("agentry.access")

ZERO = Decimal(0)
#: Principal recorded for a request refused before the caller proved who it is.
UNAUTHENTICATED = "-"

#: Statuses whose message goes into the audit record as `reason`: refusals of steps 2 and 3, whose
#: messages are fixed texts (never token content nor the caller's data).
_AUDITED_REASONS = (401, 403)


@dataclass
class RequestRecord:
    """What one request did, filled in as it goes; the audit record and the log line are made of it."""

    endpoint: str
    started: float = field(default_factory=time.perf_counter)
    principal: str | None = None
    request_bytes: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal = Decimal(0)
    """What the tokens above cost at the agent's prices (0 without spec.agent.pricing)."""
    budget_crossings: list[dict[str, str]] = field(default_factory=list)
    """The budgets this request's charges took past warnAtPercent or to their end (budget and level)."""
    run_ids: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """The runs' tool calls as audited: name, redacted arguments, outcome, latency."""
    redactions: Counter[str] = field(default_factory=Counter)
    conversation_id: str | None = None
    """The conversation the run was a turn of, once its lease was taken."""
    pending_approvals: list[dict[str, str]] = field(default_factory=list)
    """The tool calls the run paused on (tool and call id; their arguments are in no audit record)."""
    approvals: list[dict[str, Any]] = field(default_factory=list)
    """The decisions a person took on pending calls (tool, call id, approved)."""
    bearer_token: str | None = field(default=None, repr=False)
    """The caller's token, for toolsets that act as the caller; never audited nor logged."""
    span: Span | None = field(default=None, repr=False)
    """The request's trace span (a no-op one when nothing is traced), ended with the request."""

    def elapsed_ms(self) -> float:
        """Milliseconds since the request arrived."""
        return (time.perf_counter() - self.started) * 1000


#: An endpoint's own work, given the admitted caller and the record to fill in.
Work = Callable[[Principal, RequestRecord], Awaitable[Response]]


class Envelope:
    """The steps above, bound to one runtime; the only caller of the guard and of admission."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def handle(
        self,
        request: Request,
        *,
        endpoint: str,
        permission: Permission,
        work: Work,
        error_response: Callable[[ApiError], Response] | None = None,
    ) -> Response:
        """Steps 1-4, then `work` (which runs 5-9 through `run`, `run_batch` or `open_stream`), then 10-11.

        A StreamResponse is answered at once and audited when its stream ends (10-11 then).
        `error_response` renders an error in another protocol's shape (OpenAI's); Agentry's otherwise.
        """
        record = RequestRecord(endpoint=endpoint)
        tracing = self.runtime.tracing
        record.span, trace_context = tracing.start_request(
            method=request.method, path=_route(request), headers=request.headers, endpoint=endpoint
        )
        attached = otel_context.attach(trace_context)
        try:
            outcome = await self._work(request, record, permission=permission, work=work)
        finally:
            otel_context.detach(attached)
        error: ApiError | None = None
        if isinstance(outcome, ApiError):
            error = outcome
            response = error.response() if error_response is None else error_response(error)
        else:
            response = outcome
        if isinstance(response, StreamResponse):
            response.trace_context = trace_context  # the stream's events are made in the request's trace
            response.on_end = lambda stream_error: self._end(record, status=200, error=stream_error)
            return response
        await self._end(record, status=response.status_code, error=error)
        return response

    async def _work(
        self, request: Request, record: RequestRecord, *, permission: Permission, work: Work
    ) -> Response | ApiError:
        """Steps 1-4, then `work`: its response, or the error to answer instead."""
        tracer = self.runtime.tracing.tracer
        try:
            self.runtime.admission.check_open()  # 1
            with tracer.start_as_current_span("agentry.authorize"):
                principal = self._authenticate_and_authorize(request, permission)  # 2, 3
            record.bearer_token = _bearer(request.headers.get("authorization"))
            record.principal = self.runtime.anonymizer.redact_text(principal.subject).text
            with tracer.start_as_current_span("agentry.rate_limit"):
                await self.runtime.guard.hit_request(principal)  # 4
            return await work(principal, record)  # 5-9 for each run
        except ApiError as exc:
            return exc
        except Exception:
            access_log.exception("unexpected error", extra={"fields": {"endpoint": record.endpoint}})
            return ApiError(500, "internal", "internal error (see the runtime's log)")

    async def _end(self, record: RequestRecord, *, status: int, error: ApiError | None) -> None:
        """Steps 10 and 11, once per request: when it was answered, or when its stream ended."""
        if error is not None and status < 400:
            status = error.status
        latency_ms = record.elapsed_ms()
        await self._audit(record, status=status, error=error, latency_ms=latency_ms)  # 10
        self._count(record, status=status, error=error, latency_ms=latency_ms)  # 11
        if record.span is not None:
            record.span.set_attribute("agentry.tokens.input", record.input_tokens)
            record.span.set_attribute("agentry.tokens.output", record.output_tokens)
            self.runtime.tracing.end_request(record.span, status=status, error=None if error is None else error.kind)

    def scrape(self, request: Request, *, permission: Permission, serve: Callable[[], Response]) -> Response:
        """Steps 2 and 3 only, then `serve`: for /metrics when it requires a token."""
        try:
            self._authenticate_and_authorize(request, permission)
        except ApiError as exc:
            return exc.response()
        return serve()

    async def run(
        self,
        principal: Principal,
        request: RunItem,
        record: RequestRecord,
        *,
        in_batch: bool = False,
        history: Sequence[ModelMessage] = (),
    ) -> RunResponse:
        """Steps 5-9 for one prompt; ApiError on any failure.

        A batch item (RunItem) is no conversation's turn: the items run concurrently, so turns of one
        conversation within a batch could only conflict. `history` is earlier messages the client sent
        itself (a stateless protocol such as OpenAI's chat completions); it is never stored, and a run with
        one is no conversation's turn either.
        """
        await self.runtime.guard.check_run(principal)  # 5
        if history:
            return await self._run_once(principal, request, record, history=history)
        if in_batch or not isinstance(request, RunRequest):
            return await self._run_once(principal, request, record, in_batch=in_batch)
        conversations = self.runtime.conversations
        turn = await conversations.begin(principal.subject, request.conversation_id)  # 5
        record.conversation_id = turn.conversation_id
        try:
            response = await self._run_once(principal, request, record, turn=turn)
        finally:
            await conversations.release(turn)
        return response.model_copy(update={"conversation_id": turn.conversation_id})

    async def _run_once(
        self,
        principal: Principal,
        request: RunItem,
        record: RequestRecord,
        *,
        in_batch: bool = False,
        turn: Turn | None = None,
        history: Sequence[ModelMessage] = (),
        decisions: Decisions | None = None,
    ) -> RunResponse:
        """Steps 6-9: the run (with the turn's or the client's history), its charge, its result and history stored.

        With `decisions`, the run is the turn's paused one, resumed with a person's approvals (no prompt).
        """
        slot = self.runtime.tracing.waited(self.runtime.admission.slot(bypass_queue_limit=in_batch))  # 6, in 7's time
        if turn is not None:
            history = turn.history
        outcome = await self._execute(
            request, principal, record, slot=slot, history=history, decisions=decisions
        )  # 6, 7
        record.run_ids.append(outcome.run_id)
        self._check_pause(outcome, turn, record)
        stored = self._redact(request, outcome, record)  # 8
        await results.save(self.runtime.services, stored)  # 9
        if turn is not None:
            await self._finish_turn(turn, outcome, decisions)  # 9
        return results.response_of(outcome, self.runtime.prices)

    def _check_pause(self, outcome: RunOutcome, turn: Turn | None, record: RequestRecord) -> None:
        """A run that paused for approval: noted for the audit trail; refused (409) when no conversation can wait."""
        if outcome.deferred_elsewhere:
            raise ApiError(
                500, "unsupported", "the agent left a tool call for the client to run, which is not supported"
            )
        record.pending_approvals = [{"tool": p.tool, "call_id": p.call_id} for p in outcome.pending]
        if outcome.pending and turn is None:
            tools = ", ".join(sorted({p.tool for p in outcome.pending}))
            raise ApiError(
                409,
                "approval_needs_conversation",
                f"tool {tools} needs a person's approval, which only a conversation's turn can wait for "
                "(POST /v1/run or /v1/run/stream)",
            )

    async def _finish_turn(self, turn: Turn, outcome: RunOutcome, decisions: Decisions | None) -> None:
        """Step 9 for a turn: its history stored; a pending call's arguments kept as sent until it is decided."""
        pending = {p.call_id for p in outcome.pending}
        decided = set(decisions.approvals) if decisions is not None else set()
        await self.runtime.conversations.finish(turn, outcome.new_messages, pending=pending, decided=decided)

    async def resume(
        self, principal: Principal, conversation_id: str, body: ApprovalRequest, record: RequestRecord
    ) -> RunResponse:
        """Steps 5-9 for a person's decisions on a conversation's pending tool calls: the paused run continues.

        404 for a conversation that is not the caller's, 409 when it waits for no decision, 422 when the
        decisions do not answer exactly its pending calls (each unknown or missing call id named).
        """
        await self.runtime.guard.check_run(principal)  # 5
        conversations = self.runtime.conversations
        turn = await conversations.begin(principal.subject, conversation_id)  # 5
        record.conversation_id = turn.conversation_id
        try:
            pending = pending_calls(turn.history)
            decisions = decide(pending, body)
            record.approvals = [
                {"tool": pending[call_id], "call_id": call_id, "approved": decision.approved}
                for call_id, decision in body.approvals.items()
            ]
            summary = "; ".join(
                f"{'approved' if d.approved else 'denied'} {pending[call_id]} ({call_id})"
                for call_id, d in body.approvals.items()
            )
            request = RunItem(prompt=summary)
            response = await self._run_once(principal, request, record, turn=turn, decisions=decisions)
        finally:
            await conversations.release(turn)
        return response.model_copy(update={"conversation_id": turn.conversation_id})

    async def run_batch(self, principal: Principal, items: list[RunItem], record: RequestRecord) -> list[BatchItem]:
        """Steps 5-9 for every item, at most maxConcurrentRequests at once; one result or one error per item.

        The batch is admitted as a whole (429 when the queue is full); its items then wait for slots like
        everyone else, but are never refused half-way through the batch.
        """
        admission = self.runtime.admission
        admission.check_capacity()
        gate = asyncio.Semaphore(admission.max_concurrent)

        async def one(index: int, item: RunItem) -> BatchItem:
            async with gate:
                try:
                    result = await self.run(principal, item, record, in_batch=True)
                except ApiError as exc:
                    return BatchItem(index=index, ok=False, error=ErrorBody(type=exc.kind, message=exc.message))
                except Exception as exc:
                    log.error("batch item failed", exc_info=exc)
                    return BatchItem(index=index, ok=False, error=ErrorBody(type="internal", message="internal error"))
                return BatchItem(index=index, ok=True, result=result)

        return list(await asyncio.gather(*(one(index, item) for index, item in enumerate(items))))

    async def open_stream(
        self,
        principal: Principal,
        request: RunItem,
        record: RequestRecord,
        *,
        history: Sequence[ModelMessage] = (),
    ) -> StreamRun:
        """Steps 5 and 6 of a streamed run, all before its first byte, so each refusal is a plain HTTP answer.

        The stream holds the conversation's lease and the admission slot until it is closed; the request
        timeout covers the wait for the slot and the whole run (504 before the first byte, an error event after).
        """
        runtime = self.runtime
        await runtime.guard.check_run(principal)  # 5
        timeout = runtime.runner.timeout
        deadline = asyncio.get_running_loop().time() + timeout
        stack = AsyncExitStack()
        turn: Turn | None = None
        try:
            if not history and isinstance(request, RunRequest):
                turn = await runtime.conversations.begin(principal.subject, request.conversation_id)  # 5
                record.conversation_id = turn.conversation_id
                stack.push_async_callback(runtime.conversations.release, turn)
                history = turn.history
            try:
                async with asyncio.timeout_at(deadline):
                    await stack.enter_async_context(runtime.tracing.waited(runtime.admission.slot()))  # 6
            except TimeoutError:
                raise from_agent_error(TimeoutError(), timeout_seconds=timeout) from None
            live = await stack.enter_async_context(
                runtime.runner.stream(
                    prompt=request.prompt,
                    context=request.context,
                    caller=principal,
                    timeout=deadline - asyncio.get_running_loop().time(),
                    bearer_token=record.bearer_token,
                    history=history,
                    on_usage=self._meter(principal, record),
                )
            )
        except RunFailed as failed:
            await stack.aclose()
            raise from_agent_error(failed.error, timeout_seconds=timeout) from None
        except BaseException:
            await stack.aclose()
            raise
        record.run_ids.append(live.run_id)
        return StreamRun(self, request=request, record=record, live=live, turn=turn, stack=stack)

    def _authenticate_and_authorize(self, request: Request, permission: Permission) -> Principal:
        """Steps 2 and 3: the caller, when it proves who it is and holds `permission`; 401 or 403 otherwise."""
        return self.runtime.guard.admit(authorization=request.headers.get("authorization"), permission=permission)

    async def _execute(
        self,
        request: RunItem,
        principal: Principal,
        record: RequestRecord,
        *,
        slot: AbstractAsyncContextManager[None],
        history: Sequence[ModelMessage] = (),
        decisions: Decisions | None = None,
    ) -> RunOutcome:
        """Steps 6 and 7: the run, which counts in /health's statistics once admitted.

        Refusals before that (429, 503) are backpressure, not failures of this pod, so they are not counted.
        The tool calls of a failed run are redacted into the record here, since no outcome carries them.
        """
        runner = self.runtime.runner
        started = time.perf_counter()
        try:
            outcome = await runner.run(
                prompt=None if decisions is not None else request.prompt,
                context=request.context,
                admitted=slot,
                caller=principal,
                bearer_token=record.bearer_token,
                history=history,
                on_usage=self._meter(principal, record),
                decisions=decisions,
            )
        except RunFailed as failed:
            self._record_tool_calls(failed.tool_calls, record)
            if isinstance(failed.error, ApiError):
                raise failed.error from None
            error = from_agent_error(failed.error, timeout_seconds=runner.timeout)
            if error.status == 500:
                log.error("run failed", exc_info=failed.error, extra={"fields": {"endpoint": record.endpoint}})
            self._count_run(started, ok=error.status < 500)
            raise error from None
        self._count_run(started, ok=True)
        return outcome

    def _count_run(self, started: float, *, ok: bool) -> None:
        latency_ms = (time.perf_counter() - started) * 1000
        self.runtime.stats.record(latency_ms=latency_ms, ok=ok)
        self.runtime.admission.observe_latency(latency_ms)

    def _meter(self, principal: Principal, record: RequestRecord) -> OnUsage:
        """Step 7's charge, per model response as it arrives: in the metrics, the record, the rate and the budgets.

        A failed or cancelled run pays for what it used too, and a long stream is charged as it goes.
        """
        prices = self.runtime.prices

        async def charge(input_tokens: int, output_tokens: int) -> None:
            self.runtime.metrics.add_tokens(input_tokens=input_tokens, output_tokens=output_tokens)
            record.input_tokens += input_tokens
            record.output_tokens += output_tokens
            cost = ZERO
            if prices is not None:
                cost = prices.cost(input_tokens=input_tokens, output_tokens=output_tokens)
                self.runtime.metrics.add_cost(float(cost), currency=prices.currency)
                record.cost += cost
            crossed = await self.runtime.guard.charge(principal, tokens=input_tokens + output_tokens, cost=cost)
            record.budget_crossings.extend(
                {"budget": f"{SCOPE_FIELDS[c.limit.scope]}.{c.limit.kind}", "level": c.level} for c in crossed
            )

        return charge

    def _redact(
        self, request: RunItem, outcome: RunOutcome, record: RequestRecord, *, partial: bool = False
    ) -> StoredResult:
        """Step 8: the result as it may be stored, prompt, context and output anonymised."""
        anonymizer = self.runtime.anonymizer
        prompt = anonymizer.redact_text(request.prompt)
        context, context_counts = anonymizer.redact_json(request.context)
        response = results.response_of(outcome, self.runtime.prices)
        output, output_counts = anonymizer.redact_json(response.output)
        pending, pending_counts = anonymizer.redact_json(
            [p.model_dump(mode="json", by_alias=True) for p in response.pending_approvals]
        )
        record.redactions.update(prompt.counts)
        record.redactions.update(context_counts)
        record.redactions.update(output_counts)
        record.redactions.update(pending_counts)
        self._record_tool_calls(outcome.tool_calls, record)
        return StoredResult(
            run_id=outcome.run_id,
            prompt=prompt.text,
            context=context,
            output=output,
            usage=response.usage,
            latency_ms=round(outcome.latency_ms, 3),
            principal=record.principal or "",
            created_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            partial=partial,
            status=response.status,
            pending_approvals=pending,
        )

    def _record_tool_calls(self, calls: tuple[ToolCall, ...], record: RequestRecord) -> None:
        """Step 8 for the tool calls: each one's arguments anonymised, into the record for the audit trail.

        Each call is counted in the metrics here too, once, whether its run succeeded or not.
        """
        for call in calls:
            self.runtime.metrics.observe_tool_call(tool=call.tool, ok=call.ok, seconds=call.latency_ms / 1000)
            args, counts = self.runtime.anonymizer.redact_json(call.args)
            record.redactions.update(counts)
            record.tool_calls.append({"tool": call.tool, "args": args, "ok": call.ok, "latency_ms": call.latency_ms})

    async def _audit(self, record: RequestRecord, *, status: int, error: ApiError | None, latency_ms: float) -> None:
        """Step 10: the request's one audit record."""
        await self.runtime.audit.record(
            principal=record.principal or UNAUTHENTICATED,
            outcome="ok" if error is None else "error",
            request_bytes=record.request_bytes,
            error=None if error is None else error.kind,
            latency_ms=latency_ms,
            tokens_in=record.input_tokens,
            tokens_out=record.output_tokens,
            cost=self._cost(record),
            redactions=dict(record.redactions),
            endpoint=record.endpoint,
            status=status,
            run_ids=record.run_ids,
            tool_calls=record.tool_calls,
            **_conversation(record),
            **_approvals(record),
            **_budgets(record),
            **_refusal(error),
        )

    def _cost(self, record: RequestRecord) -> dict[str, Any] | None:
        """The audit record's `cost`: what the request's tokens cost, or null without a price table."""
        prices = self.runtime.prices
        return None if prices is None else {"amount": wire_amount(record.cost), "currency": prices.currency}

    def _count(self, record: RequestRecord, *, status: int, error: ApiError | None, latency_ms: float) -> None:
        """Step 11: the request in the metrics and its access-log line."""
        self.runtime.metrics.observe(endpoint=record.endpoint, status=status, seconds=latency_ms / 1000)
        if error is not None:
            self.runtime.metrics.errors.labels(kind=error.kind).inc()
        fields = {
            "endpoint": record.endpoint,
            "status": status,
            "latencyMs": round(latency_ms, 1),
            "principal": record.principal,
            "runIds": record.run_ids,
            "error": None if error is None else error.kind,
        }
        access_log.info("request", extra={"fields": fields})


class StreamRun:
    """A streamed run (steps 7-9 as its events go by) that holds its slot and lease until `close`.

    `events()` yields pydantic-ai's events, then Completed once the result is stored (and the conversation's
    history with it), or Failed. `close()` runs whatever happened; a run that did not complete (the client
    left, the run failed or timed out) has what it wrote so far stored as a partial result.
    """

    def __init__(
        self,
        envelope: Envelope,
        *,
        request: RunItem,
        record: RequestRecord,
        live: LiveRun,
        turn: Turn | None,
        stack: AsyncExitStack,
    ) -> None:
        self._envelope = envelope
        self._request = request
        self._record = record
        self._live = live
        self._turn = turn
        self._stack = stack
        self._text: list[str] = []
        self._completed = False
        self._released = False
        self._closed = False
        self.error: ApiError | None = None
        envelope.runtime.admission.open_streams += 1

    @property
    def run_id(self) -> str:
        """The run's id, known before its first event."""
        return self._live.run_id

    @property
    def conversation_id(self) -> str | None:
        """The conversation this run is a turn of (None for a run with the client's own history)."""
        return None if self._turn is None else self._turn.conversation_id

    async def events(self) -> AsyncIterator[RunEvent]:
        """The run's events; an error ends them with Failed (never raised to the protocol).

        The slot and the lease are freed before the last event, so a client that sends its next request the
        moment it reads it is never refused for its own finished stream.
        """
        envelope, live = self._envelope, self._live
        try:
            async for event in live.events:
                if isinstance(event, AgentRunResultEvent):
                    outcome = live.outcome(event.result)
                    envelope._count_run(live.started, ok=True)
                    response = await self._complete(outcome)
                    await self._release()
                    yield event
                    yield Completed(response)
                    return
                self._text.append(text_of(event))
                yield event
        except Exception as exc:
            self.error = self._failure(exc)
            await self._release()
            await self._store_partial()
            yield Failed(self.error)

    async def _complete(self, outcome: RunOutcome) -> RunResponse:
        """Steps 8 and 9 for the run that ended: its redacted result and the conversation's history stored."""
        envelope = self._envelope
        envelope._check_pause(outcome, self._turn, self._record)
        stored = envelope._redact(self._request, outcome, self._record)  # 8
        await results.save(envelope.runtime.services, stored)  # 9
        if self._turn is not None:
            await envelope._finish_turn(self._turn, outcome, None)  # 9
        self._completed = True
        response = results.response_of(outcome, envelope.runtime.prices)
        return response.model_copy(update={"conversation_id": self.conversation_id})

    def _failure(self, exc: Exception) -> ApiError:
        """The run's error as the caller gets it, counted like a non-streamed run's."""
        envelope, live = self._envelope, self._live
        if isinstance(exc, ApiError):  # storing the result or the history failed: the run itself went well
            return exc
        error = from_agent_error(exc, timeout_seconds=envelope.runtime.runner.timeout)
        if error.status == 500:
            log.error("run failed", exc_info=exc, extra={"fields": {"endpoint": self._record.endpoint}})
        envelope._count_run(live.started, ok=error.status < 500)
        return error

    async def close(self, *, disconnected: bool) -> ApiError | None:
        """However the stream ended: a run still going is cancelled and stored as partial, slot and lease freed."""
        if self._closed:
            return self.error
        self._closed = True
        if self._completed or self.error is not None:
            await self._release()  # freed already, unless the protocol stopped iterating at the last event
            return self.error
        if disconnected:
            self.error = ApiError(CLIENT_CLOSED, "client_disconnected", "the client closed the stream")
        else:
            self.error = ApiError(500, "internal", "the stream ended before the run did")
        await self._release()  # cancels the run: its tool calls are all recorded then
        await self._store_partial()
        return self.error

    async def _release(self) -> None:
        """Leave the run (cancelling it if it still goes), free the slot, release the lease; once."""
        if self._released:
            return
        self._released = True
        try:
            await self._stack.aclose()
        finally:
            self._envelope.runtime.admission.open_streams -= 1

    async def _store_partial(self) -> None:
        """The output written before the run stopped, stored as partial (a failure here is only logged)."""
        envelope, live = self._envelope, self._live
        outcome = RunOutcome(
            run_id=live.run_id,
            output="".join(self._text),
            input_tokens=self._record.input_tokens,
            output_tokens=self._record.output_tokens,
            requests=0,
            latency_ms=(time.perf_counter() - live.started) * 1000,
            tool_calls=tuple(live.recorder.calls),
        )
        stored = envelope._redact(self._request, outcome, self._record, partial=True)
        try:
            await results.save(envelope.runtime.services, stored)
        except ApiError:
            log.warning("the partial result of a stream was not stored", extra={"fields": {"runId": live.run_id}})


def _bearer(authorization: str | None) -> str | None:
    """The token of a `Bearer <token>` header (already verified by step 2), else None."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _conversation(record: RequestRecord) -> dict[str, str]:
    """The `conversation_id` of a turn, for the audit trail (a random id: no PII)."""
    return {} if record.conversation_id is None else {"conversation_id": record.conversation_id}


def _approvals(record: RequestRecord) -> dict[str, Any]:
    """The calls a run paused on and the decisions taken on them, for the audit trail (no arguments)."""
    fields: dict[str, Any] = {}
    if record.pending_approvals:
        fields["pending_approvals"] = record.pending_approvals
    if record.approvals:
        fields["approvals"] = record.approvals
    return fields


def _budgets(record: RequestRecord) -> dict[str, Any]:
    """The budget levels the request's charges crossed, for the audit trail (the record names who spent it)."""
    return {"budgets": record.budget_crossings} if record.budget_crossings else {}


def _refusal(error: ApiError | None) -> dict[str, str]:
    """The `reason` of an authentication or authorisation refusal, for the audit trail."""
    if error is None or error.status not in _AUDITED_REASONS:
        return {}
    return {"reason": error.message}


def _route(request: Request) -> str:
    """The matched route's template (`/v1/results/{run_id}`), never the path with its ids, for the span's name."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else request.url.path
