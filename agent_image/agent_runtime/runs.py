"""Executing runs for the API: backpressure, timeout, token limits, then the anonymised result stored."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from .errors import ApiError, from_agent_error
from .exchange import Exchange
from .runner import RunOutcome
from .runtime import Runtime
from .schemas import BatchItem, ErrorBody, RunRequest, RunResponse, StoredResult, Usage
from .security.auth import Principal

log = logging.getLogger(__name__)

#: Cache key prefix of stored results; a result read twice is served from the cache the second time.
RESULT_KEY = "result:"


async def execute(
    *, runtime: Runtime, principal: Principal, request: RunRequest, exchange: Exchange, in_batch: bool = False
) -> RunResponse:
    """Run the agent for one request and store its result; ApiError on any failure.

    The timeout covers queueing and running. A run counts in /health's statistics once admitted;
    refusals before that (429, 503) are backpressure, not failures of this pod.
    """
    await runtime.guard.check_tokens(principal)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(runtime.timeout), runtime.admission.slot(bypass_queue_limit=in_batch):
            outcome = await runtime.runner.run(prompt=request.prompt, context=request.context)
    except ApiError:
        raise
    except Exception as exc:
        error = from_agent_error(exc, timeout_seconds=runtime.timeout)
        if error.status == 500:
            log.error("run failed", exc_info=exc, extra={"fields": {"endpoint": exchange.endpoint}})
        _record(runtime=runtime, started=started, ok=error.status < 500)
        raise error from None
    _record(runtime=runtime, started=started, ok=True)
    await _charge(runtime=runtime, principal=principal, outcome=outcome, exchange=exchange)
    await store(runtime=runtime, request=request, outcome=outcome, exchange=exchange)
    return response_of(outcome)


def _record(*, runtime: Runtime, started: float, ok: bool) -> None:
    latency_ms = (time.perf_counter() - started) * 1000
    runtime.stats.record(latency_ms=latency_ms, ok=ok)
    runtime.admission.observe_latency(latency_ms)


async def _charge(*, runtime: Runtime, principal: Principal, outcome: RunOutcome, exchange: Exchange) -> None:
    runtime.metrics.add_tokens(input_tokens=outcome.input_tokens, output_tokens=outcome.output_tokens)
    exchange.input_tokens += outcome.input_tokens
    exchange.output_tokens += outcome.output_tokens
    exchange.run_ids.append(outcome.run_id)
    await runtime.guard.add_tokens(principal, outcome.tokens)


def response_of(outcome: RunOutcome) -> RunResponse:
    """The wire answer of a run (the caller gets its own output unredacted)."""
    return RunResponse(
        run_id=outcome.run_id,
        output=outcome.output,
        usage=Usage(input_tokens=outcome.input_tokens, output_tokens=outcome.output_tokens, requests=outcome.requests),
        latency_ms=round(outcome.latency_ms, 3),
    )


async def store(*, runtime: Runtime, request: RunRequest, outcome: RunOutcome, exchange: Exchange) -> None:
    """Anonymise prompt, context and output, then write the result; 503 when the database fails."""
    anonymizer = runtime.anonymizer
    prompt = anonymizer.redact_text(request.prompt)
    context, context_counts = anonymizer.redact_json(request.context)
    output, output_counts = anonymizer.redact_json(outcome.output)
    exchange.redactions.update(prompt.counts)
    exchange.redactions.update(context_counts)
    exchange.redactions.update(output_counts)
    stored = StoredResult(
        run_id=outcome.run_id,
        prompt=prompt.text,
        context=context,
        output=output,
        usage=response_of(outcome).usage,
        latency_ms=round(outcome.latency_ms, 3),
        principal=exchange.principal or "",
        created_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
    ).model_dump(mode="json", by_alias=True)
    try:
        await runtime.services.database.save_result(outcome.run_id, stored)
    except Exception as exc:
        log.error("storing a result failed", exc_info=exc)
        raise ApiError(
            503, "database_unavailable", "the result could not be stored; retry later", retry_after=5
        ) from None


async def load(*, runtime: Runtime, run_id: str) -> dict[str, Any]:
    """A stored result, from the cache when it was read recently; 404 when there is none.

    The cache is an optimisation: when it fails the database answers; when the database fails the
    caller gets 503 with Retry-After, not a 500.
    """
    cached = await _cache_get(runtime, RESULT_KEY + run_id)
    if cached is not None:
        return dict(json.loads(cached))
    try:
        stored = await runtime.services.database.get_result(run_id)
    except Exception as exc:
        log.error("reading a result failed", exc_info=exc)
        raise ApiError(503, "database_unavailable", "results cannot be read now; retry later", retry_after=5) from None
    if stored is None:
        raise ApiError(404, "not_found", f"no result with id {run_id!r}")
    await _cache_set(runtime, RESULT_KEY + run_id, json.dumps(stored))
    return dict(stored)


async def _cache_get(runtime: Runtime, key: str) -> str | None:
    try:
        return await runtime.services.cache.get(key)
    except Exception as exc:
        log.warning("cache read failed", exc_info=exc)
        return None


async def _cache_set(runtime: Runtime, key: str, value: str) -> None:
    try:
        await runtime.services.cache.set(key, value)
    except Exception as exc:
        log.warning("cache write failed", exc_info=exc)


async def execute_batch(
    *, runtime: Runtime, principal: Principal, items: list[RunRequest], exchange: Exchange
) -> list[BatchItem]:
    """Every item run with at most maxConcurrentRequests at once; one result or one error per item."""
    runtime.admission.check_capacity()
    gate = asyncio.Semaphore(runtime.admission.max_concurrent)

    async def one(index: int, item: RunRequest) -> BatchItem:
        async with gate:
            try:
                result = await execute(
                    runtime=runtime, principal=principal, request=item, exchange=exchange, in_batch=True
                )
            except ApiError as exc:
                return BatchItem(index=index, ok=False, error=ErrorBody(type=exc.kind, message=exc.message))
            except Exception as exc:
                log.error("batch item failed", exc_info=exc)
                return BatchItem(index=index, ok=False, error=ErrorBody(type="internal", message="internal error"))
            return BatchItem(index=index, ok=True, result=result)

    return list(await asyncio.gather(*(one(index, item) for index, item in enumerate(items))))
