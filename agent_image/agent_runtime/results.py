"""Run results: the wire answer of a run, and its redacted record written to the database and read back.

Reading goes through the cache, which is an optimisation: when it fails the database answers; when the
database fails the caller gets 503 with Retry-After, not a 500.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from .errors import ApiError
from .execution import RunOutcome
from .pricing import PriceTable
from .schemas import Cost, PendingApproval, RunResponse, StoredResult, Usage
from .services.container import Services

log = logging.getLogger(__name__)

#: Cache key prefix of stored results; a result read twice is served from the cache the second time.
RESULT_KEY = "result:"


def response_of(outcome: RunOutcome, prices: PriceTable | None) -> RunResponse:
    """The wire answer of a run (the caller gets its own output unredacted), its cost at `prices`."""
    pending = [PendingApproval(call_id=p.call_id, tool=p.tool, args=p.args) for p in outcome.pending]
    tokens = {"input_tokens": outcome.input_tokens, "output_tokens": outcome.output_tokens}
    cost = None if prices is None else Cost(amount=prices.amount(**tokens), currency=prices.currency)
    return RunResponse(
        run_id=outcome.run_id,
        output=None if pending else outcome.output,
        usage=Usage(**tokens, requests=outcome.requests, cost=cost),
        latency_ms=round(outcome.latency_ms, 3),
        status="awaiting_approval" if pending else "completed",
        pending_approvals=pending,
    )


async def save(services: Services, stored: StoredResult) -> None:
    """Write an already redacted result; 503 when the database fails."""
    document = stored.model_dump(mode="json", by_alias=True)
    try:
        await services.database.save_result(stored.run_id, document)
    except Exception as exc:
        log.error("storing a result failed", exc_info=exc)
        raise ApiError(
            503, "database_unavailable", "the result could not be stored; retry later", retry_after=5
        ) from None


async def load(services: Services, run_id: str) -> dict[str, Any]:
    """A stored result, from the cache when it was read recently; 404 when there is none."""
    cached = await _cache_get(services, RESULT_KEY + run_id)
    if cached is not None:
        return dict(json.loads(cached))
    try:
        stored = await services.database.get_result(run_id)
    except Exception as exc:
        log.error("reading a result failed", exc_info=exc)
        raise ApiError(503, "database_unavailable", "results cannot be read now; retry later", retry_after=5) from None
    if stored is None:
        raise ApiError(404, "not_found", f"no result with id {run_id!r}")
    await _cache_set(services, RESULT_KEY + run_id, json.dumps(stored))
    return dict(stored)


async def _cache_get(services: Services, key: str) -> str | None:
    try:
        return await services.cache.get(key)
    except Exception as exc:
        log.warning("cache read failed", exc_info=exc)
        return None


async def _cache_set(services: Services, key: str, value: str) -> None:
    try:
        await services.cache.set(key, value)
    except Exception as exc:
        log.warning("cache write failed", exc_info=exc)
