"""The operational endpoints: /health for the operator, /healthz and /readyz for probes, /metrics.

The health endpoints are never authenticated: the kubelet and the operator poll them without
credentials, and they reveal counts and states, never prompts or results. /metrics is open too
unless spec.security.metrics.requireAuth asks for a token with the read_metrics permission; a scrape
is then authenticated and authorised by the envelope (`Envelope.scrape`), but neither rate-limited nor
audited (one record per scrape would drown the trail).
"""

from __future__ import annotations

import asyncio
import time

import psutil
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentry_api.health import Breaker, Dependency, HealthReport, Memory, Percentiles

from .envelope import Envelope
from .health import judge
from .metrics import CONTENT_TYPE
from .runtime import Runtime
from .security.permissions import Permission


async def health_report(runtime: Runtime) -> HealthReport:
    """The full report: dependency checks now, statistics of the recent window."""
    checks, spend = await asyncio.gather(runtime.dependency_checks(), runtime.spend())
    recent = runtime.stats.snapshot()
    breakers = runtime.breakers()
    status, reasons = judge(
        dependencies=checks, breakers=[b.state for b in breakers], recent=recent, spec=runtime.config.spec.health
    )
    if runtime.admission.draining:
        reasons.append("draining: shutting down")
    admission = runtime.admission
    return HealthReport(
        status=status,
        reasons=reasons,
        uptime_seconds=round(time.monotonic() - runtime.started_at, 3),
        memory=Memory(rss_bytes=psutil.Process().memory_info().rss),
        in_flight=admission.in_flight,
        queued=admission.queued,
        max_concurrent=admission.max_concurrent,
        max_queued=admission.max_queued,
        draining=admission.draining,
        recent_requests=recent.count,
        success_rate=round(recent.success_rate, 4),
        error_rate=round(recent.error_rate, 4),
        latency_ms=Percentiles(p50=round(recent.p50, 3), p95=round(recent.p95, 3), p99=round(recent.p99, 3)),
        dependencies=[
            Dependency(name=c.name, state=c.state, detail=c.detail, latency_ms=round(c.latency_ms, 3)) for c in checks
        ],
        circuit_breakers=[Breaker(name=b.name, state=b.state, failures=b.failures) for b in breakers],
        open_streams=admission.open_streams,
        active_conversations=runtime.conversation_count.value,
        spend=spend,
    )


def ops_routes(envelope: Envelope) -> list[Route]:
    """The operational routes, bound to one runtime's envelope (which only /metrics may need)."""
    runtime = envelope.runtime

    async def health(request: Request) -> Response:
        report = await health_report(runtime)
        status = 503 if report.status == "unhealthy" else 200
        return JSONResponse(report.model_dump(mode="json", by_alias=True), status_code=status)

    async def healthz(request: Request) -> Response:
        lag = runtime.heartbeat.lag()
        alive = lag <= runtime.settings.max_loop_lag_seconds
        return JSONResponse({"alive": alive, "loopLagSeconds": round(lag, 3)}, status_code=200 if alive else 503)

    async def readyz(request: Request) -> Response:
        ready = runtime.ready
        body = {"ready": ready, "draining": runtime.admission.draining, "servicesStarted": runtime.container.started}
        return JSONResponse(body, status_code=200 if ready else 503)

    def exposition() -> Response:
        return Response(runtime.metrics.render(breakers=runtime.breakers()), media_type=CONTENT_TYPE)

    async def metrics(request: Request) -> Response:
        if runtime.config.spec.security.metrics.require_auth:
            return envelope.scrape(request, permission=Permission.READ_METRICS, serve=exposition)
        return exposition()

    return [
        Route("/health", health, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
