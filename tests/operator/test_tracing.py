"""The operator's traces: one span per reconcile, with the agent, the children applied and the outcome."""

from __future__ import annotations

from datetime import UTC, datetime

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agent_operator.config import OperatorConfig
from agent_operator.reconcile import Reconciler
from agent_operator.tracing import SCOPE, tracer_provider
from tests.support.agents import agent

from .fakeapi import FakeApi

NAMESPACE = "team-a"


async def test_each_reconcile_is_a_span_naming_the_agent_its_children_and_outcome() -> None:
    exporter = InMemorySpanExporter()
    provider = tracer_provider({}, exporter=exporter)
    assert provider is not None
    kube = FakeApi()
    reconciler = Reconciler(
        kube=kube,
        config=OperatorConfig(),
        now=lambda: datetime(2026, 1, 1, tzinfo=UTC),
        tracer=provider.get_tracer(SCOPE),
    )
    kube.put_agent(agent("triage", NAMESPACE))
    assert await reconciler.reconcile_named(namespace=NAMESPACE, name="triage") is not None  # its Secret is missing
    kube.secrets[(NAMESPACE, "jwt")] = {"key"}
    assert await reconciler.reconcile_named(namespace=NAMESPACE, name="triage") is None
    provider.force_flush()
    spans = [s for s in exporter.get_finished_spans() if s.name == "reconcile"]
    assert len(spans) == 2
    missing, applied = (s.attributes or {} for s in spans)
    assert missing["agentry.agent"] == applied["agentry.agent"] == "team-a/triage"
    assert (missing["agentry.outcome"], spans[0].status.status_code) == ("SecretNotFound", StatusCode.ERROR)
    assert applied["agentry.outcome"] == "Reconciled"
    children = applied["agentry.children"]
    assert isinstance(children, tuple)
    assert {"Deployment/triage", "ConfigMap/triage-config", "Service/triage"} <= set(children)
    [apply] = [s for s in exporter.get_finished_spans() if s.name == "apply"]
    assert apply.parent is not None and spans[1].context is not None
    assert apply.parent.span_id == spans[1].context.span_id
    provider.shutdown()


def test_the_operator_traces_only_with_a_collector_in_the_standard_variables() -> None:
    assert tracer_provider({}) is None
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    provider = tracer_provider(endpoint)
    assert provider is not None and provider.resource.attributes["service.name"] == "agentry-operator"
    provider.shutdown()
    assert tracer_provider({**endpoint, "OTEL_SDK_DISABLED": "true"}) is None
    assert tracer_provider({**endpoint, "OTEL_TRACES_EXPORTER": "none"}) is None
