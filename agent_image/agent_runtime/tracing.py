"""OpenTelemetry traces of the runtime: one trace per request, exported over OTLP/HTTP in the background.

Configured by spec.observability.tracing; the standard variables win over it, so the runtime traces the same way
outside Kubernetes: OTEL_SDK_DISABLED and OTEL_TRACES_EXPORTER=none turn it off, OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT
and _HEADERS say where, OTEL_TRACES_SAMPLER[_ARG] how much, OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES what
it is. Without an endpoint from either, nothing is traced and every span here is a no-op.

A request's span (SERVER) continues the caller's `traceparent`; the envelope's steps, pydantic-ai's own spans
(GenAI conventions: the agent run, each model request with its tokens, each tool call) and the calls out
(TracedTransport: the model endpoint, the external API) are its children, and the calls out carry the trace on.
Spans are batched and sent from a background thread: a slow or dead collector never delays nor fails a request;
the exporter's last result shows in /health (`tracing`, degraded while exports fail). With captureContent,
prompts, outputs and tool arguments go into the spans through the audit trail's PII redaction; without it,
pydantic-ai records none.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any

import httpx
import httpx2
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http._common import _is_request_too_large
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import NoOpTracer, Span, SpanKind, StatusCode, Tracer
from pydantic_ai.models.instrumented import InstrumentationSettings

from agentry_api.v1alpha1 import TracingSpec

from .otlp import encode_request
from .security.pii import Anonymizer
from .services.protocols import ServiceHealth

__all__ = [
    "FastOTLPExporter",
    "TracedHttpx2Transport",
    "TracedTransport",
    "Tracing",
    "WatchedExporter",
    "parse_headers",
]

log = logging.getLogger(__name__)

#: The instrumentation scope of the runtime's own spans.
SCOPE = "agentry.runtime"
#: Seconds one export may take (the SDK retries within it) before the batch is dropped and the failure noted.
EXPORT_TIMEOUT = 5.0
#: Connection pool of a traced model client: pydantic-ai's own default (1000 connections, 100 kept idle).
MODEL_LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
#: Longest the shutdown waits for the last spans to leave, so a dead collector cannot hold up a pod's stop.
SHUTDOWN_TIMEOUT_MS = 3000


def _flag(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name, "").strip().lower()


class WatchedExporter(SpanExporter):
    """The real exporter, its outcome remembered for /health, and content redacted on the way out.

    It never raises: the batch processor's thread would log a traceback per batch for a dead collector.
    """

    def __init__(self, inner: SpanExporter, *, anonymizer: Anonymizer | None) -> None:
        self._inner = inner
        self._anonymizer = anonymizer
        self._lock = threading.Lock()
        self.healthy = True
        self.last_error = ""
        self.exported = 0
        self.failed = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Send the batch (redacted when content is captured) and note how it went."""
        batch = spans if self._anonymizer is None else [self._redacted(span) for span in spans]
        try:
            result = self._inner.export(batch)
            error = "" if result is SpanExportResult.SUCCESS else "the collector refused or did not answer"
        except Exception as exc:  # a broken exporter must not kill the batch processor's thread
            result, error = SpanExportResult.FAILURE, f"{type(exc).__name__}: {exc}"
        with self._lock:
            if result is SpanExportResult.SUCCESS:
                self.exported += len(batch)
                self.healthy, self.last_error = True, ""
            else:
                if self.healthy:
                    log.warning("tracing: %d spans could not be exported (%s)", len(batch), error)
                self.failed += len(batch)
                self.healthy, self.last_error = False, error
        return result

    def shutdown(self) -> None:
        """Shut the real exporter down."""
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Flush the real exporter."""
        return self._inner.force_flush(timeout_millis)

    def _redacted(self, span: ReadableSpan) -> ReadableSpan:
        anonymizer = self._anonymizer
        assert anonymizer is not None

        def clean(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
            return {key: _redact_value(anonymizer, value) for key, value in (attributes or {}).items()}

        events = [Event(e.name, attributes=clean(e.attributes), timestamp=e.timestamp) for e in span.events]
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=clean(span.attributes),
            events=events,
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )


def _redact_value(anonymizer: Anonymizer, value: Any) -> Any:
    if isinstance(value, str):
        return anonymizer.redact_text(value).text
    if isinstance(value, tuple | list):
        return tuple(anonymizer.redact_text(v).text if isinstance(v, str) else v for v in value)
    return value


class FastOTLPExporter(OTLPSpanExporter):
    """The SDK's OTLP/HTTP exporter (endpoint, headers, TLS, compression, retries) with otlp.py's encoder.

    Encoding is most of what a traced request costs the batch thread, which holds the GIL while it works; the
    bytes are the SDK encoder's, made in less than half the time.
    """

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Encode `spans` and send them, as the SDK's export does (too large a request is dropped, not sent)."""
        if self._shutdown:
            return SpanExportResult.FAILURE
        with self._metrics.export_operation(len(spans)) as result:
            data = encode_request(spans)
            if _is_request_too_large(data, self._max_request_size):
                log.warning("tracing: a batch of %d bytes is over the exporter's limit, dropped", len(data))
                return SpanExportResult.FAILURE
            sent = self._client.export(data)
            if not sent.success:
                result.error = sent.error
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS


class Tracing:
    """The runtime's tracer provider (or none) and what the envelope, the runner and the clients need of it."""

    def __init__(
        self, *, provider: TracerProvider | None, exporter: WatchedExporter | None, capture_content: bool
    ) -> None:
        self.provider = provider
        self.exporter = exporter
        self._owned: list[TracedHttpx2Transport] = []
        self.tracer: Tracer = NoOpTracer() if provider is None else provider.get_tracer(SCOPE)
        self.instrumentation: InstrumentationSettings | None = (
            None
            if provider is None
            else InstrumentationSettings(
                tracer_provider=provider,
                include_content=capture_content,
                include_binary_content=False,
                include_model_request_parameters=False,
            )
        )
        """pydantic-ai's instrumentation of each run, or None when nothing is traced."""

    @property
    def enabled(self) -> bool:
        """Whether spans are recorded and exported."""
        return self.provider is not None

    @classmethod
    def from_spec(
        cls,
        spec: TracingSpec,
        *,
        service: str,
        namespace: str,
        headers: str | None,
        anonymizer: Anonymizer,
        environ: Mapping[str, str] | None = None,
        exporter: SpanExporter | None = None,
    ) -> Tracing:
        """The tracing of spec.observability.tracing under `environ`'s OTEL_* variables.

        `headers` is the value of spec.observability.tracing.headersSecretRef; `exporter` replaces the OTLP one
        (tests read spans in memory).
        """
        env = os.environ if environ is None else environ
        off = _flag(env, "OTEL_SDK_DISABLED") == "true" or _flag(env, "OTEL_TRACES_EXPORTER") == "none"
        env_endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        if off or not spec.enabled or (exporter is None and not env_endpoint and spec.endpoint is None):
            return cls(provider=None, exporter=None, capture_content=False)
        if exporter is None:
            exporter = _otlp_exporter(spec, env_endpoint=env_endpoint, headers=headers, environ=env)
        attributes: dict[str, str] = {"service.namespace": namespace, "agentry.agent": f"{namespace}/{service}"}
        if not env.get("OTEL_SERVICE_NAME"):
            attributes["service.name"] = service
        watched = WatchedExporter(exporter, anonymizer=anonymizer if spec.capture_content else None)
        provider = TracerProvider(resource=Resource.create(attributes), sampler=_sampler(spec, env))
        provider.add_span_processor(BatchSpanProcessor(watched))
        return cls(provider=provider, exporter=watched, capture_content=spec.capture_content)

    def health(self) -> ServiceHealth | None:
        """`tracing` as a dependency of /health: degraded while exports fail; None when nothing is traced."""
        if self.exporter is None:
            return None
        if self.exporter.healthy:
            return ServiceHealth(name="tracing", state="ok", detail=f"{self.exporter.exported} spans exported")
        detail = f"exports failing ({self.exporter.last_error}); {self.exporter.failed} spans dropped"
        return ServiceHealth(name="tracing", state="degraded", detail=detail)

    def start_request(
        self, *, method: str, path: str, headers: Mapping[str, str], endpoint: str
    ) -> tuple[Span, otel_context.Context]:
        """The request's SERVER span, continuing the caller's traceparent, and the context to run it in.

        Untraced, the span is the invalid one and the context the current one: no header is parsed.
        """
        if not self.enabled:
            return trace.INVALID_SPAN, otel_context.get_current()
        parent = propagate.extract(headers)
        span = self.tracer.start_span(
            f"{method} {path}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path, "agentry.endpoint": endpoint},
        )
        return span, trace.set_span_in_context(span, parent)

    @staticmethod
    def end_request(span: Span, *, status: int, error: str | None) -> None:
        """End the request's span with its HTTP status (an ERROR status for 5xx, as HTTP's conventions say)."""
        span.set_attribute("http.response.status_code", status)
        if error is not None:
            span.set_attribute("error.type", error)
        if status >= 500:
            span.set_status(StatusCode.ERROR, error)
        span.end()

    def waited(self, slot: AbstractAsyncContextManager[None]) -> AbstractAsyncContextManager[None]:
        """The admission slot, its wait for a free run slot (step 6) an `agentry.admission` span."""
        return _WaitedSlot(slot, tracer=self.tracer) if self.enabled else slot

    def transport(self, inner: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncBaseTransport | None:
        """A transport for an outgoing client: traced when tracing is on; `inner` (None: httpx's own) otherwise."""
        if not self.enabled:
            return inner
        return TracedTransport(inner or httpx.AsyncHTTPTransport(), tracer=self.tracer)

    def model_transport(self) -> httpx2.AsyncBaseTransport | None:
        """The transport of an endpoint model's client (httpx2, pydantic-ai's): traced, or None when tracing is off."""
        if not self.enabled:
            return None
        transport = TracedHttpx2Transport(httpx2.AsyncHTTPTransport(limits=MODEL_LIMITS), tracer=self.tracer)
        self._owned.append(transport)
        return transport

    async def aclose(self) -> None:
        """Close the model transports made here (a client handed to a provider stays its giver's to close)."""
        owned, self._owned = self._owned, []
        for transport in owned:
            await transport.aclose()

    def shutdown(self) -> None:
        """Send what is queued (bounded by SHUTDOWN_TIMEOUT_MS) and stop the exporter's thread."""
        if self.provider is not None:
            self.provider.force_flush(SHUTDOWN_TIMEOUT_MS)
            self.provider.shutdown()


def _sampler(spec: TracingSpec, env: Mapping[str, str]) -> Sampler | None:
    """The spec's ratio, parent-based; None lets the SDK read OTEL_TRACES_SAMPLER when it is set."""
    if env.get("OTEL_TRACES_SAMPLER"):
        return None
    return ParentBased(TraceIdRatioBased(spec.sampling_ratio))


def _otlp_exporter(
    spec: TracingSpec, *, env_endpoint: str | None, headers: str | None, environ: Mapping[str, str]
) -> SpanExporter:
    """OTLP/HTTP (protobuf) to the variables' endpoint, or to the spec's with its Secret headers."""
    options: dict[str, Any] = {"timeout": EXPORT_TIMEOUT}
    if not env_endpoint and spec.endpoint is not None:
        options["endpoint"] = spec.endpoint.rstrip("/") + "/v1/traces"
    if (
        headers
        and not environ.get("OTEL_EXPORTER_OTLP_HEADERS")
        and not environ.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
    ):
        options["headers"] = parse_headers(headers)
    return FastOTLPExporter(**options)


def parse_headers(text: str) -> dict[str, str]:
    """`name=value,name2=value2` (OTEL_EXPORTER_OTLP_HEADERS's format) as a dict; blanks around items ignored."""
    headers: dict[str, str] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if sep and name.strip():
            headers[name.strip().lower()] = value.strip()
    return headers


class _WaitedSlot(AbstractAsyncContextManager[None]):
    """Entering `slot` (queueing for a run slot) within a span that ends once the slot is held."""

    def __init__(self, slot: AbstractAsyncContextManager[None], *, tracer: Tracer) -> None:
        self._slot = slot
        self._tracer = tracer

    async def __aenter__(self) -> None:
        with self._tracer.start_as_current_span("agentry.admission"):
            await self._slot.__aenter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> bool | None:
        return await self._slot.__aexit__(kind, error, traceback)


async def _send_traced(tracer: Tracer, request: Any, send: Callable[[Any], Awaitable[Any]]) -> Any:
    """Send an httpx or httpx2 request within a CLIENT span, the current trace in its `traceparent` header."""
    url = request.url
    attributes: dict[str, str | int] = {
        "http.request.method": request.method,
        "server.address": url.host,
        "server.port": url.port or (443 if url.scheme == "https" else 80),
        "url.path": url.path,
    }
    with tracer.start_as_current_span(
        request.method, kind=SpanKind.CLIENT, attributes=attributes, record_exception=True
    ) as span:
        carrier: MutableMapping[str, str] = {}
        propagate.inject(carrier)
        request.headers.update(carrier)
        response = await send(request)
        span.set_attribute("http.response.status_code", response.status_code)
        if response.status_code >= 500:
            span.set_status(StatusCode.ERROR)
        return response


class TracedTransport(httpx.AsyncBaseTransport):
    """An outgoing HTTP call (httpx: the external API) as a CLIENT span that passes the trace on."""

    def __init__(self, inner: httpx.AsyncBaseTransport, *, tracer: Tracer) -> None:
        self._inner = inner
        self._tracer = tracer

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` within its span; a transport error marks the span and propagates."""
        response: httpx.Response = await _send_traced(self._tracer, request, self._inner.handle_async_request)
        return response

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._inner.aclose()


class TracedHttpx2Transport(httpx2.AsyncBaseTransport):
    """The same for httpx2, which pydantic-ai's model clients use (the model endpoint)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, *, tracer: Tracer) -> None:
        self._inner = inner
        self._tracer = tracer

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send `request` within its span; a transport error marks the span and propagates."""
        response: httpx2.Response = await _send_traced(self._tracer, request, self._inner.handle_async_request)
        return response

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._inner.aclose()
