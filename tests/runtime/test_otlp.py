"""otlp.py writes what the SDK's OTLP encoder writes, byte for byte, for every kind of span and value."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)
from pydantic_ai import Agent
from pydantic_ai.capabilities.instrumentation import Instrumentation
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.models.test import TestModel

from agent_runtime import otlp
from agent_runtime.otlp import encode_request


def recorder(
    resource: Resource | None = None, limits: SpanLimits | None = None
) -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider(resource=resource or Resource.create({"service.name": "agent"}), span_limits=limits)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def sdk_bytes(spans: list[ReadableSpan]) -> bytes:
    return encode_spans(spans).SerializePartialToString()


async def test_pydantic_ais_spans_of_a_run_with_a_tool_encode_as_the_sdk_does() -> None:
    provider, exporter = recorder()
    settings = InstrumentationSettings(tracer_provider=provider, include_content=True, include_binary_content=False)
    agent: Agent[None, str] = Agent(TestModel(), output_type=str)

    @agent.tool_plain
    def lookup(query: str, limit: int = 3) -> str:
        """Look something up."""
        return f"{limit} results for {query}"

    for prompt in ("What is Agentry?", "And again?"):
        await agent.run(prompt, capabilities=[Instrumentation(settings=settings)])
    spans = list(exporter.get_finished_spans())
    assert {s.name for s in spans} >= {"invoke_agent agent", "chat test", "execute_tool lookup"}
    assert encode_request(spans) == sdk_bytes(spans)


def test_every_field_and_value_type_encodes_as_the_sdk_does() -> None:
    provider, exporter = recorder(limits=SpanLimits(max_span_attributes=12, max_events=2, max_links=1))
    other, other_exporter = recorder(Resource.create({"service.name": "other", "tier": 2}))
    tracer = provider.get_tracer("agentry.runtime", "1.2.3", schema_url="https://example.test/schema")
    plain = provider.get_tracer("plain")
    remote = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "value"), ("other", "x")]),
    )
    attributes: dict[str, Any] = {
        "text": "hello",
        "empty": "",
        "unicode": "grüße ✓",
        "long": "x" * 1000,
        "yes": True,
        "no": False,
        "zero": 0,
        "negative": -42,
        "big": 2**62,
        "ratio": 0.25,
        "names": ("a", "b", ""),
        "numbers": [1, -2, 3],
        "flags": [True, False],
        "floats": [1.5, -0.0],
    }
    with tracer.start_as_current_span(
        "POST /v1/run",
        context=set_span_in_context(NonRecordingSpan(remote)),
        kind=SpanKind.SERVER,
        attributes=attributes,  # two over the limit: dropped_attributes_count is written
        links=[Link(remote, {"why": "batch"}), Link(remote)],
    ) as server:
        server.add_event("queued", {"position": 3, "reason": "full"})
        server.add_event("bare")
        server.add_event("third")  # over max_events
        server.add_event("fourth")
        with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT) as client:
            client.set_status(StatusCode.ERROR, "upstream answered 503")
        with plain.start_as_current_span("produce", kind=SpanKind.PRODUCER) as produced:
            produced.set_status(StatusCode.OK)
        with plain.start_as_current_span("consume", kind=SpanKind.CONSUMER):
            pass
    with other.get_tracer("other").start_as_current_span("elsewhere"):
        pass
    mine = list(exporter.get_finished_spans())
    spans = mine[:2] + list(other_exporter.get_finished_spans()) + mine[2:]  # two resources, interleaved
    assert spans[-1].dropped_attributes == 2 and spans[-1].dropped_events == 2 and spans[-1].dropped_links == 1
    assert encode_request(spans) == sdk_bytes(spans)
    parsed = ExportTraceServiceRequest.FromString(encode_request(spans))
    assert [len(r.scope_spans) for r in parsed.resource_spans] == [2, 1]


def test_a_value_that_cannot_be_encoded_is_left_out_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    provider, exporter = recorder()
    with provider.get_tracer("t").start_as_current_span("span", attributes={"ok": "yes"}) as span:
        span._attributes._dict["huge"] = 2**70  # type: ignore[attr-defined]  # past the SDK's own checks
    spans = list(exporter.get_finished_spans())
    with caplog.at_level(logging.WARNING, logger="agent_runtime.otlp"):
        encoded = encode_request(spans)
    parsed = ExportTraceServiceRequest.FromString(encoded)
    [kept] = parsed.resource_spans[0].scope_spans[0].spans[0].attributes
    assert kept.key == "ok" and kept.value.string_value == "yes"
    assert "huge" in caplog.text and "int64" in caplog.text


def test_the_caches_start_over_when_full_and_change_no_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otlp, "CACHE_LIMIT", 3)
    provider, exporter = recorder()
    for n in range(10):
        with provider.get_tracer("t").start_as_current_span(f"s{n}", attributes={f"k{n}": f"v{n}", "same": "v"}):
            pass
    spans = list(exporter.get_finished_spans())
    first = encode_request(spans)
    assert len(otlp._strings) <= 3 and len(otlp._keys) <= 3
    assert first == encode_request(spans) == sdk_bytes(spans)


def test_an_empty_batch_is_an_empty_request() -> None:
    assert encode_request([]) == sdk_bytes([]) == b""
