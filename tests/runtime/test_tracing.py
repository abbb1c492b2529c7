"""Traces on a real server: one trace per request, continuing the caller's, passed on to what the agent calls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pydantic_ai.models
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agent_runtime.runtime import Runtime
from agent_runtime.security.pii import Anonymizer
from agent_runtime.tracing import Tracing, parse_headers
from agentry_api.v1alpha1 import PrivacySpec, SecretKeyRef, TracingSpec
from agentry_api.wiring import secret_env_name
from tests.support.jaeger import JaegerServer, running_jaeger

from .harness import Backend, auth, base_spec, serving
from .mcp_servers import Seen, mcp_app
from .models import streaming_tool_then_words
from .servers import chat_completions_app, free_port, serve_in_thread
from .upstream import Script, upstream_app

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
TRACING_ON: dict[str, Any] = {"observability": {"tracing": {}}}


def traced(headers: dict[str, str] | None = None) -> dict[str, str]:
    return {**auth(), "traceparent": TRACEPARENT, **(headers or {})}


def finished(runtime: Runtime, exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    assert runtime.tracing.provider is not None
    runtime.tracing.provider.force_flush()
    return list(exporter.get_finished_spans())


def attribute_text(spans: list[ReadableSpan]) -> str:
    values = [str(v) for s in spans for v in (s.attributes or {}).values()]
    values += [str(v) for s in spans for e in s.events for v in (e.attributes or {}).values()]
    return "\n".join(values)


async def eventually_spans(runtime: Runtime, exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    """The finished spans once one is called `name` (bounded: 5 s)."""
    async with asyncio.timeout(5):
        while True:
            spans = finished(runtime, exporter)
            if any(s.name == name for s in spans):
                return spans
            await asyncio.sleep(0.02)


def by_name(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> Iterator[ReadableSpan]:
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        yield span


async def test_a_request_is_one_trace_that_continues_the_callers(runtime_backend: Backend) -> None:
    exporter = InMemorySpanExporter()
    runtime = runtime_backend.runtime(TRACING_ON, span_exporter=exporter)
    with serving(runtime) as url:
        answer = httpx.post(f"{url}/v1/run", json={"prompt": "hello from alice@example.com"}, headers=traced())
        spans = finished(runtime, exporter)
    assert answer.status_code == 200
    assert {format(s.context.trace_id, "032x") for s in spans if s.context} == {TRACE_ID}
    server = by_name(spans, "POST /v1/run")
    assert server.kind is SpanKind.SERVER
    assert server.parent is not None and format(server.parent.span_id, "016x") == CALLER_SPAN
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["agentry.endpoint"] == "run"
    for step in ("agentry.authorize", "agentry.rate_limit", "agentry.admission"):
        assert by_name(spans, step).parent == server.context
    # pydantic-ai's own spans (GenAI conventions), inside the request's
    model_calls = [s for s in spans if (s.attributes or {}).get("gen_ai.operation.name") == "chat"]
    assert model_calls, [s.name for s in spans]
    assert all(server in ancestors(call, spans) for call in model_calls)
    assert any("gen_ai.usage.input_tokens" in (s.attributes or {}) for s in model_calls)
    # pydantic-ai's serialized request parameters (every tool's metadata and schemas, per model call) are left out
    assert not any("model_request_parameters" in (s.attributes or {}) for s in spans)
    # content is off by default: neither the prompt nor who sent it is in any span
    text = attribute_text(spans)
    assert "alice@example.com" not in text and "hello from" not in text


async def test_routes_name_spans_by_their_template_not_their_ids(runtime_backend: Backend) -> None:
    exporter = InMemorySpanExporter()
    runtime = runtime_backend.runtime(TRACING_ON, span_exporter=exporter)
    with serving(runtime) as url:
        missing = httpx.get(f"{url}/v1/results/0123456789abcdef", headers=traced())
        refused = httpx.post(f"{url}/v1/run", json={"prompt": "x"}, headers={"traceparent": TRACEPARENT})
        spans = finished(runtime, exporter)
    assert (missing.status_code, refused.status_code) == (404, 401)
    lookup = by_name(spans, "GET /v1/results/{run_id}")
    assert lookup.attributes is not None and lookup.attributes["error.type"] == "not_found"
    run = by_name(spans, "POST /v1/run")
    assert run.attributes is not None and run.attributes["http.response.status_code"] == 401
    assert "0123456789abcdef" not in "".join(s.name for s in spans)


async def test_captured_content_goes_through_pii_redaction(runtime_backend: Backend) -> None:
    exporter = InMemorySpanExporter()
    spec = {"observability": {"tracing": {"captureContent": True}}}
    runtime = runtime_backend.runtime(spec, span_exporter=exporter)
    with serving(runtime) as url:
        answer = httpx.post(f"{url}/v1/run", json={"prompt": "hello from alice@example.com"}, headers=traced())
        spans = finished(runtime, exporter)
    assert answer.status_code == 200
    text = attribute_text(spans)
    assert "hello from" in text  # the prompt is there...
    assert "alice@example.com" not in text  # ...redacted like the audit trail


async def test_a_stream_is_traced_until_its_last_event(runtime_backend: Backend) -> None:
    exporter = InMemorySpanExporter()
    runtime = runtime_backend.runtime(TRACING_ON, span_exporter=exporter)
    with serving(runtime) as url:
        with httpx.stream("POST", f"{url}/v1/run/stream", json={"prompt": "count"}, headers=traced()) as response:
            lines = [line for line in response.iter_lines() if line.startswith("data: ")]
        # The request's span ends just after the last byte, which the client may read first.
        spans = await eventually_spans(runtime, exporter, "POST /v1/run/stream")
    assert lines
    server = by_name(spans, "POST /v1/run/stream")
    assert by_name(spans, "agentry.admission").parent == server.context
    model_calls = [s for s in spans if (s.attributes or {}).get("gen_ai.operation.name") == "chat"]
    assert model_calls and all(server in ancestors(call, spans) for call in model_calls)
    assert server.end_time is not None and all(
        c.end_time is not None and c.end_time <= server.end_time for c in model_calls
    )


async def test_the_model_endpoint_gets_the_trace(runtime_backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pydantic_ai.models, "ALLOW_MODEL_REQUESTS", True)  # a loopback stand-in, not a provider
    exporter = InMemorySpanExporter()
    requests: list[dict[str, Any]] = []
    with serve_in_thread(chat_completions_app(requests)) as model_url:
        agent = {"model": "openai-chat:stand-in", "endpoint": {"baseURL": f"{model_url}/v1"}}
        runtime = runtime_backend.runtime({**TRACING_ON, "agent": agent}, span_exporter=exporter)
        with serving(runtime) as url:
            answer = httpx.post(f"{url}/v1/run", json={"prompt": "hi"}, headers=traced())
            spans = finished(runtime, exporter)
    assert answer.status_code == 200, answer.text
    sent = requests[0]["traceparent"]
    assert sent is not None and sent.split("-")[1] == TRACE_ID
    client = [s for s in spans if s.kind is SpanKind.CLIENT and "http.request.method" in (s.attributes or {})]
    assert [format(s.context.span_id, "016x") for s in client if s.context] == [sent.split("-")[2]]


async def test_the_external_api_gets_the_trace_from_inside_the_tool_call(runtime_backend: Backend) -> None:
    exporter = InMemorySpanExporter()
    script = Script()
    with serve_in_thread(upstream_app(script)) as api_url:
        spec = {**TRACING_ON, "services": {"externalAPI": {"baseURL": api_url}}}
        model = streaming_tool_then_words("call_external_api", {"path": "/orders/7"}, ["done"])
        runtime = runtime_backend.runtime(spec, model=model, span_exporter=exporter)
        with serving(runtime) as url:
            answer = httpx.post(f"{url}/v1/run", json={"prompt": "order 7?"}, headers=traced())
            spans = finished(runtime, exporter)
    assert answer.status_code == 200, answer.text
    assert script.calls == ["/orders/7"]
    sent = script.traceparents[0]
    assert sent is not None and sent.split("-")[1] == TRACE_ID
    client = by_name(spans, "GET")
    assert client.attributes is not None and client.attributes["url.path"] == "/orders/7"
    tool = [s for s in ancestors(client, spans) if (s.attributes or {}).get("gen_ai.tool.name") == "call_external_api"]
    assert tool, [s.name for s in ancestors(client, spans)]


async def test_a_dead_collector_fails_no_request_and_shows_as_degraded(
    runtime_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")  # export at once rather than every 5 s
    dead = f"http://127.0.0.1:{free_port()}"
    runtime = runtime_backend.runtime({"observability": {"tracing": {"endpoint": dead}}})
    with serving(runtime) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            answers = [await client.post("/v1/run", json={"prompt": "x"}, headers=auth()) for _ in range(3)]
            async with asyncio.timeout(30):
                while True:
                    report = (await client.get("/health")).json()
                    tracing = [d for d in report["dependencies"] if d["name"] == "tracing"]
                    if tracing and tracing[0]["state"] == "degraded":
                        break
                    await asyncio.sleep(0.2)
            after = await client.post("/v1/run", json={"prompt": "still"}, headers=auth())
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert after.status_code == 200
    assert "spans dropped" in tracing[0]["detail"]


async def test_without_an_endpoint_nothing_is_traced(runtime_backend: Backend) -> None:
    runtime = runtime_backend.runtime()
    with serving(runtime) as url:
        report = httpx.get(f"{url}/health").json()
    assert not runtime.tracing.enabled and runtime.runner.instrumentation is None
    assert "tracing" not in {d["name"] for d in report["dependencies"]}


ANONYMIZER = Anonymizer(PrivacySpec(), None)


@pytest.mark.parametrize(
    ("spec", "environ", "enabled"),
    [
        ({}, {}, False),
        ({"endpoint": "http://collector:4318"}, {}, True),
        ({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({}, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"endpoint": "http://collector:4318"}, {"OTEL_SDK_DISABLED": "true"}, False),
        ({"endpoint": "http://collector:4318"}, {"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"endpoint": "http://collector:4318", "enabled": False}, {}, False),
    ],
)
def test_the_standard_variables_win_over_the_spec(spec: dict[str, Any], environ: dict[str, str], enabled: bool) -> None:
    tracing = Tracing.from_spec(
        TracingSpec.model_validate(spec),
        service="a",
        namespace="n",
        headers=None,
        anonymizer=ANONYMIZER,
        environ=environ,
    )
    assert tracing.enabled is enabled
    tracing.shutdown()


def test_collector_headers_use_otlps_format() -> None:
    assert parse_headers("api-key=s3cret, X-Tenant = team-a,,broken") == {"api-key": "s3cret", "x-tenant": "team-a"}


def whole_trace(jaeger: JaegerServer, names: set[str], timeout: float = 30.0) -> list[dict[str, Any]]:
    """Jaeger's traces of the agent once TRACE_ID holds spans of all `names` (batches arrive one by one)."""
    deadline = time.monotonic() + timeout
    while True:
        traces = jaeger.traces("agent")
        stored = {s["operationName"] for t in traces if t["traceID"] == TRACE_ID for s in t["spans"]}
        if names <= stored or time.monotonic() > deadline:
            return traces
        time.sleep(0.1)


@pytest.mark.slow
async def test_a_real_collector_receives_the_trace_tree_over_otlp(
    runtime_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jaeger (built from its Go module) stores what the OTLP exporter sent: the request's tree, as sent on."""
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    script = Script()
    with running_jaeger() as jaeger, serve_in_thread(upstream_app(script)) as api_url:
        spec = {
            "observability": {"tracing": {"endpoint": jaeger.otlp_http_endpoint}},
            "services": {"externalAPI": {"baseURL": api_url}},
        }
        model = streaming_tool_then_words("call_external_api", {"path": "/orders/7"}, ["done"])
        runtime = runtime_backend.runtime(spec, model=model)
        with serving(runtime) as url:
            answer = httpx.post(f"{url}/v1/run", json={"prompt": "order 7?"}, headers=traced())
            traces = await asyncio.to_thread(whole_trace, jaeger, {"POST /v1/run", "GET"})
            health = httpx.get(f"{url}/health").json()
    assert answer.status_code == 200, answer.text
    [trace] = [t for t in traces if t["traceID"] == TRACE_ID]
    spans = {s["spanID"]: s for s in trace["spans"]}
    server = next(s for s in spans.values() if s["operationName"] == "POST /v1/run")
    assert [r["spanID"] for r in server["references"]] == [CALLER_SPAN]  # the caller's span, not stored here
    sent = script.traceparents[0]
    assert sent is not None
    client = spans[sent.split("-")[2]]  # the span the external API was told about is the stored client span
    assert client["operationName"] == "GET"
    chain = []
    span = client
    while span["references"] and span["references"][0]["spanID"] in spans:
        span = spans[span["references"][0]["spanID"]]
        chain.append(span["operationName"])
    assert chain[-1] == "POST /v1/run"
    assert any("call_external_api" in name for name in chain), chain
    tags = {t["key"]: t["value"] for s in spans.values() for t in s["tags"]}
    assert tags.get("gen_ai.operation.name") in {"chat", "execute_tool", "invoke_agent"}
    tracing = next(d for d in health["dependencies"] if d["name"] == "tracing")
    assert tracing["state"] == "ok"


async def test_an_mcp_server_gets_the_trace_in_the_calls_meta(runtime_backend: Backend) -> None:
    exporter = InMemorySpanExporter()
    seen = Seen()
    with serve_in_thread(mcp_app(seen)) as base:
        toolsets = [{"name": "tickets", "mcp": {"url": f"{base}/mcp"}}]
        model = streaming_tool_then_words("traceparent", {}, ["done"])
        runtime = runtime_backend.runtime(
            TRACING_ON, model=model, agent={**base_spec()["agent"], "toolsets": toolsets}, span_exporter=exporter
        )
        with serving(runtime) as url:
            answer = httpx.post(f"{url}/v1/run", json={"prompt": "trace?"}, headers=traced())
            spans = finished(runtime, exporter)
    assert answer.status_code == 200, answer.text
    assert seen.calls == ["traceparent"]
    sent = seen.traceparents[0]
    assert sent is not None and sent.split("-")[1] == TRACE_ID
    tool = [s for s in spans if (s.attributes or {}).get("gen_ai.tool.name") == "traceparent"]
    assert tool and by_name(spans, "POST /v1/run") in ancestors(tool[0], spans)


async def test_sampling_is_parent_based_and_an_unsampled_request_records_nothing(runtime_backend: Backend) -> None:
    exporter = InMemorySpanExporter()
    never = {"observability": {"tracing": {"samplingRatio": 0}}}
    runtime = runtime_backend.runtime(never, span_exporter=exporter)
    with serving(runtime) as url:
        alone = httpx.post(f"{url}/v1/run", json={"prompt": "x"}, headers=auth())
        unsampled = f"00-{TRACE_ID}-{CALLER_SPAN}-00"
        declined = httpx.post(f"{url}/v1/run", json={"prompt": "x"}, headers={**auth(), "traceparent": unsampled})
        assert finished(runtime, exporter) == []  # ratio 0, and a caller that does not sample: nothing
        sampled = httpx.post(f"{url}/v1/run", json={"prompt": "x"}, headers=traced())
        spans = finished(runtime, exporter)
    assert alone.status_code == declined.status_code == sampled.status_code == 200
    assert {format(s.context.trace_id, "032x") for s in spans if s.context} == {TRACE_ID}  # the caller's decision
    assert any((s.attributes or {}).get("gen_ai.operation.name") == "chat" for s in spans)


async def test_database_and_cache_calls_are_spans_of_the_request_they_serve(runtime_backend: Backend) -> None:
    exporter = InMemorySpanExporter()
    runtime = runtime_backend.runtime(TRACING_ON, span_exporter=exporter)
    database = "postgresql" if runtime_backend.postgres_url else "sqlite"
    with serving(runtime) as url:
        answer = httpx.post(f"{url}/v1/run", json={"prompt": "x"}, headers=traced()).json()
        httpx.get(f"{url}/v1/results/{answer['runId']}", headers=traced())
        spans = finished(runtime, exporter)
        await asyncio.sleep(1.5)  # the audit trail's background flush: no trace of its own
        background = [s for s in finished(runtime, exporter) if s not in spans]
    run, lookup = by_name(spans, "POST /v1/run"), by_name(spans, "GET /v1/results/{run_id}")
    saved = by_name(spans, f"save_result {database}")
    assert saved.kind is SpanKind.CLIENT and run in ancestors(saved, spans)
    assert saved.attributes is not None and saved.attributes["db.system.name"] == database
    assert run in ancestors(by_name(spans, f"save_conversation {database}"), spans)
    if runtime_backend.redis_url:  # the second read of a result is the cache's
        assert lookup in ancestors(by_name(spans, "get redis"), spans)
    assert lookup in ancestors(by_name(spans, f"get_result {database}"), spans)
    assert background == []


async def test_the_headers_secret_reaches_the_collector(
    runtime_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """spec.observability.tracing.headersSecretRef's value is sent with every export (a collector's API key).

    The body is an OTLP protobuf request (otlp.py's encoding) that protobuf's own parser reads.
    """
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    received: list[dict[str, str]] = []
    bodies: list[ExportTraceServiceRequest] = []

    async def traces(request: Request) -> Response:
        received.append(dict(request.headers))
        bodies.append(ExportTraceServiceRequest.FromString(await request.body()))
        return Response(status_code=200)

    collector = Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])
    with serve_in_thread(collector) as collector_url:
        ref = {"name": "collector", "key": "headers"}
        spec = {"observability": {"tracing": {"endpoint": collector_url, "headersSecretRef": ref}}}
        runtime_backend.environ[secret_env_name(SecretKeyRef.model_validate(ref))] = "api-key=s3cret,x-tenant=team-a"
        runtime = runtime_backend.runtime(spec)
        with serving(runtime) as url:
            assert httpx.post(f"{url}/v1/run", json={"prompt": "x"}, headers=auth()).status_code == 200
            async with asyncio.timeout(10):
                while "POST /v1/run" not in span_names(bodies):  # the request's span ends last
                    await asyncio.sleep(0.05)
    assert received[0]["api-key"] == "s3cret" and received[0]["x-tenant"] == "team-a"
    assert received[0]["content-type"] == "application/x-protobuf"
    assert {"agentry.authorize", "invoke_agent agent"} <= span_names(bodies)


def span_names(requests: list[ExportTraceServiceRequest]) -> set[str]:
    return {s.name for r in requests for rs in r.resource_spans for scope in rs.scope_spans for s in scope.spans}
