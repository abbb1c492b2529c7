"""The chart's dashboard and alerts, checked by promtool and against real scrapes.

promtool checks and unit-tests every alert; the dashboard is valid JSON whose every queried series exists in
a real scrape; both render only when their value turns them on.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent_operator.health.metrics import OperatorMetrics
from tests.runtime.harness import Backend, auth, serving
from tests.runtime.models import streaming_tool_then_words
from tests.runtime.servers import serve_in_thread
from tests.runtime.upstream import Script, upstream_app
from tests.support.gotools import PROMTOOL, GoToolBuildError, build

from .chart import CHART, objects, one, render

RULES = CHART / "files" / "alerts" / "agentry.rules.yaml"
RULE_TESTS = Path(__file__).parent / "alerts" / "agentry.test.yaml"
DASHBOARD = CHART / "files" / "dashboards" / "agentry.json"
#: Every alert the rules define, each with a firing case in RULE_TESTS.
ALERTS = {
    "AgentryAgentNotReady",
    "AgentryRestartBudgetExhausted",
    "AgentryReconcileErrors",
    "AgentryAgentErrorRateHigh",
    "AgentryAgentLatencyHigh",
    "AgentryBudgetWarning",
    "AgentryBudgetExhausted",
}


@pytest.fixture(scope="module")
def promtool() -> Path:
    try:
        return build(PROMTOOL)
    except GoToolBuildError as error:
        pytest.fail(str(error), pytrace=False)


def test_promtool_accepts_the_rules(promtool: Path) -> None:
    done = subprocess.run([str(promtool), "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in done.stdout


def test_every_alert_fires_in_its_promtool_unit_test(promtool: Path) -> None:
    defined = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    assert defined == ALERTS
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert firing == ALERTS  # each alert has a case where it fires (and the file has cases where it must not)
    done = subprocess.run(
        [str(promtool), "test", "rules", RULE_TESTS.name],
        capture_output=True,
        text=True,
        check=False,
        cwd=RULE_TESTS.parent,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def queried_series(dashboard: dict[str, Any]) -> set[str]:
    """The metric names in every panel's queries and in the variables' queries."""
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return {name for expr in exprs for name in re.findall(r"\bagentry_[a-z0-9_]+", expr)}


def scraped_series(text: str) -> set[str]:
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


async def test_every_series_the_dashboard_queries_is_in_a_real_scrape(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["panels"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    # A runtime that priced, called a tool and answered: every series it can export has a sample. Its first run
    # spends the agent's budget of one token (crossing warn and exhausted), the second is refused for it.
    script = Script()
    with serve_in_thread(upstream_app(script)) as api_url:
        spec = {
            "agent": {"pricing": {"inputPerMillionTokens": 1, "outputPerMillionTokens": 2}},
            "services": {"externalAPI": {"baseURL": api_url}},
            "health": {"maxP95LatencyMs": 2000},
            "security": {"rateLimit": {"requestsPerMinute": 2}, "budgets": {"perAgent": {"tokens": 1, "cost": 1}}},
        }
        model = streaming_tool_then_words("call_external_api", {"path": "/x"}, ["done"])
        runtime = Backend(data_dir=tmp_path).runtime(spec, model=model)
        with serving(runtime) as url:
            for _ in range(3):  # the second is refused for the budget, the third is rate-limited
                httpx.post(f"{url}/v1/run", json={"prompt": "x"}, headers=auth())
            runtime_scrape = httpx.get(f"{url}/metrics").text
    # The operator's registry after a reconcile failure, a health round and agents with conditions.
    metrics = OperatorMetrics()
    metrics.observe_reconcile("Error")
    metrics.reconcile_seconds.observe(0.2)
    metrics.restarts.inc()
    metrics.restarts_held.inc()
    metrics.polls.labels(state="ok").inc()
    degraded = {"type": "Degraded", "status": "True", "reason": "RestartBudgetExhausted"}
    metrics.watch_agents(lambda: [{"conditions": [{"type": "Ready", "status": "False"}, degraded]}])
    operator_scrape = generate_latest(metrics.registry).decode()
    available = scraped_series(runtime_scrape) | scraped_series(operator_scrape)
    missing = queried_series(dashboard) - available
    assert not missing, f"the dashboard queries series nobody exports: {sorted(missing)}"
    rules = yaml.safe_load(RULES.read_text())
    alert_series = {
        n for g in rules["groups"] for r in g["rules"] for n in re.findall(r"\bagentry_[a-z0-9_]+", r["expr"])
    }
    assert not alert_series - available, sorted(alert_series - available)


def test_the_dashboard_and_the_alerts_render_only_when_enabled(tmp_path: Path) -> None:
    off = objects(render({}, tmp_path))
    assert not [d for d in off if d["kind"] in {"PrometheusRule"} or d["metadata"]["name"].endswith("-dashboards")]
    dashboards = {"enabled": True, "namespace": "monitoring", "annotations": {"grafana_folder": "Agentry"}}
    values = {"dashboards": dashboards, "alerts": {"enabled": True, "labels": {"release": "prometheus"}}}
    docs = objects(render(values, tmp_path))
    configmap = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboards"))
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Agentry"}
    assert json.loads(configmap["data"]["agentry.json"]) == json.loads(DASHBOARD.read_text())
    rule = one(docs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
