"""The operator's own traces: a span per reconcile, sent over OTLP/HTTP when a collector is configured.

Configured only by OpenTelemetry's standard variables, which the chart sets from `tracing.endpoint`:
OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT (none: no tracing), OTEL_SDK_DISABLED, OTEL_TRACES_EXPORTER=none,
OTEL_TRACES_SAMPLER[_ARG], OTEL_SERVICE_NAME (default agentry-operator). Spans leave in batches from a
background thread: a dead collector never slows a reconcile.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

__all__ = ["SCOPE", "tracer_provider"]

#: The instrumentation scope of the operator's spans.
SCOPE = "agentry.operator"
#: Seconds one export may take before the batch is dropped.
EXPORT_TIMEOUT = 5.0


def tracer_provider(environ: Mapping[str, str], *, exporter: SpanExporter | None = None) -> TracerProvider | None:
    """The operator's tracer provider, or None when no collector is configured (or tracing is turned off).

    `exporter` replaces the OTLP one (tests read spans in memory).
    """
    off = environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    off = off or environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none"
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if off or (exporter is None and not endpoint):
        return None
    attributes = {} if environ.get("OTEL_SERVICE_NAME") else {"service.name": "agentry-operator"}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(exporter or OTLPSpanExporter(timeout=EXPORT_TIMEOUT)))
    return provider
