"""The envelope around every /v1 request: admit the caller, do the work, then count, audit and log it.

Whatever happens inside (success, refusal, a bug), the caller gets a JSON answer, the metrics count it,
and exactly one audit record and one access-log line describe it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from .errors import ApiError
from .runtime import Runtime
from .security.auth import Principal
from .security.permissions import Permission

log = logging.getLogger("agentry.access")

#: Principal recorded for a request refused before the caller proved who it is.
UNAUTHENTICATED = "-"


@dataclass
class Exchange:
    """What one request did, filled in as it goes; the audit record and the log line are made of it."""

    endpoint: str
    started: float = field(default_factory=time.perf_counter)
    principal: str | None = None
    request_bytes: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    run_ids: list[str] = field(default_factory=list)
    redactions: Counter[str] = field(default_factory=Counter)

    def elapsed_ms(self) -> float:
        """Milliseconds since the request arrived."""
        return (time.perf_counter() - self.started) * 1000


Work = Callable[[Principal, Exchange], Awaitable[Response]]


async def handle(*, runtime: Runtime, request: Request, endpoint: str, permission: Permission, work: Work) -> Response:
    """Authenticate, authorise and rate-limit, run `work`, then count, audit and log the outcome."""
    exchange = Exchange(endpoint=endpoint)
    error: ApiError | None = None
    try:
        runtime.admission.check_open()
        principal = runtime.guard.admit(authorization=request.headers.get("authorization"), permission=permission)
        exchange.principal = runtime.anonymizer.redact_text(principal.subject).text
        await runtime.guard.hit_request(principal)
        response = await work(principal, exchange)
    except ApiError as exc:
        error = exc
    except Exception:
        log.exception("unexpected error", extra={"fields": {"endpoint": endpoint}})
        error = ApiError(500, "internal", "internal error (see the runtime's log)")
    if error is not None:
        response = error.response()
    await _finish(runtime=runtime, exchange=exchange, status=response.status_code, error=error)
    return response


#: Statuses whose message goes into the audit record as `reason`: refusals of the security envelope,
#: whose messages are fixed texts (never token content nor the caller's data).
_AUDITED_REASONS = (401, 403)


def _refusal(error: ApiError | None) -> dict[str, str]:
    """The `reason` of an authentication or authorisation refusal, for the audit trail."""
    if error is None or error.status not in _AUDITED_REASONS:
        return {}
    return {"reason": error.message}


async def _finish(*, runtime: Runtime, exchange: Exchange, status: int, error: ApiError | None) -> None:
    latency_ms = exchange.elapsed_ms()
    runtime.metrics.observe(endpoint=exchange.endpoint, status=status, seconds=latency_ms / 1000)
    if error is not None:
        runtime.metrics.errors.labels(kind=error.kind).inc()
    await runtime.audit.record(
        principal=exchange.principal or UNAUTHENTICATED,
        outcome="ok" if error is None else "error",
        request_bytes=exchange.request_bytes,
        error=None if error is None else error.kind,
        latency_ms=latency_ms,
        tokens_in=exchange.input_tokens,
        tokens_out=exchange.output_tokens,
        redactions=dict(exchange.redactions),
        endpoint=exchange.endpoint,
        status=status,
        run_ids=exchange.run_ids,
        **_refusal(error),
    )
    fields = {
        "endpoint": exchange.endpoint,
        "status": status,
        "latencyMs": round(latency_ms, 1),
        "principal": exchange.principal,
        "runIds": exchange.run_ids,
        "error": None if error is None else error.kind,
    }
    log.info("request", extra={"fields": fields})
