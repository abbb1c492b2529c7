"""The tracing test tools work: Jaeger stores an OTLP/JSON trace as sent, and promtool checks and unit-tests rules."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gotools import PROMTOOL, GoToolBuildError, build
from tests.support.jaeger import running_jaeger

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "53995c3f42cd8ad8"
CHILD_ID = "00f067aa0ba902b7"
Json = dict[str, Any]


def otlp_span(span_id: str, name: str, start: int, attributes: dict[str, str | int], parent: str = "") -> Json:
    """One span in OTLP's JSON encoding (ids in hex, times in nanoseconds as strings)."""
    values = {k: {"stringValue": v} if isinstance(v, str) else {"intValue": str(v)} for k, v in attributes.items()}
    return {
        "traceId": TRACE_ID,
        "spanId": span_id,
        "parentSpanId": parent,
        "name": name,
        "kind": 2 if not parent else 1,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 5_000_000),
        "attributes": [{"key": k, "value": v} for k, v in values.items()],
    }


@pytest.mark.slow
def test_jaeger_stores_a_trace_sent_over_otlp_http_json() -> None:
    now = time.time_ns()
    parent = otlp_span(PARENT_ID, "agent run", now, {"agentry.agent": "support-bot", "agentry.run.steps": 2})
    child = otlp_span(CHILD_ID, "tool call", now + 1_000_000, {"agentry.tool": "search"}, parent=PARENT_ID)
    service = {"key": "service.name", "value": {"stringValue": "agentry-test"}}
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [service]},
                "scopeSpans": [{"scope": {"name": "tests.support"}, "spans": [parent, child]}],
            }
        ]
    }
    with running_jaeger() as jaeger:
        sent = httpx.post(f"{jaeger.otlp_http_endpoint}/v1/traces", json=body, timeout=10.0)
        assert sent.status_code == 200, sent.text
        assert sent.headers["content-type"].startswith("application/json")
        (trace,) = jaeger.wait_for_spans("agentry-test", 2, timeout=15.0)
        assert jaeger.traces("someone-else") == []

    assert trace["traceID"] == TRACE_ID
    spans = {span["spanID"]: span for span in trace["spans"]}
    assert set(spans) == {PARENT_ID, CHILD_ID}
    assert spans[PARENT_ID]["operationName"] == "agent run"
    assert spans[PARENT_ID]["references"] == []
    assert spans[CHILD_ID]["references"] == [{"refType": "CHILD_OF", "traceID": TRACE_ID, "spanID": PARENT_ID}]
    tags = {span_id: {tag["key"]: tag["value"] for tag in span["tags"]} for span_id, span in spans.items()}
    assert tags[PARENT_ID].items() >= {"agentry.agent": "support-bot", "agentry.run.steps": 2}.items()
    assert tags[CHILD_ID]["agentry.tool"] == "search"
    assert {trace["processes"][span["processID"]]["serviceName"] for span in spans.values()} == {"agentry-test"}


RULES = """\
groups:
  - name: agentry
    rules:
      - record: job:agentry_runs:rate5m
        expr: sum by (job) (rate(agentry_runs_total[5m]))
      - alert: AgentryRunsFailing
        expr: sum by (job) (rate(agentry_run_failures_total[5m])) > 0
        for: 1m
        labels:
          severity: warning
        annotations:
          summary: "runs of {{ $labels.job }} fail"
"""

RULE_TESTS = """\
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'agentry_runs_total{job="operator"}'
        values: '0+60x10'
      - series: 'agentry_run_failures_total{job="operator"}'
        values: '0+1x10'
    promql_expr_test:
      - expr: job:agentry_runs:rate5m
        eval_time: 10m
        exp_samples:
          - labels: 'job:agentry_runs:rate5m{job="operator"}'
            value: 1
    alert_rule_test:
      - eval_time: 10m
        alertname: AgentryRunsFailing
        exp_alerts:
          - exp_labels: {job: operator, severity: warning}
            exp_annotations: {summary: runs of operator fail}
"""


@pytest.fixture(scope="session")
def promtool() -> Path:
    """The cached promtool, built on first use; a build failure fails the test (nothing is skipped)."""
    try:
        return build(PROMTOOL)
    except GoToolBuildError as error:
        pytest.fail(str(error), pytrace=False)


def run(binary: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_promtool_checks_and_unit_tests_rules_and_rejects_a_broken_one(promtool: Path, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / "rules_test.yaml").write_text(RULE_TESTS)
    checked = run(promtool, "check", "rules", "rules.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 2 rules found" in checked.stdout
    tested = run(promtool, "test", "rules", "rules_test.yaml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout

    (tmp_path / "broken.yaml").write_text(RULES.replace("[5m]))\n", "[5m])\n", 1))
    broken = run(promtool, "check", "rules", "broken.yaml", cwd=tmp_path)
    assert broken.returncode == 1
    assert "broken.yaml" in broken.stderr
    assert "unclosed left parenthesis" in broken.stderr
