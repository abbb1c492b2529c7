"""The operator's series stay few: labels from bounded sets, never an agent's or a pod's name."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent_operator.health.metrics import OperatorMetrics

BOUNDED_LABELS = {"state", "direction", "reason", "condition", "status", "le"}


def test_the_operators_labels_are_bounded_and_name_no_agent() -> None:
    metrics = OperatorMetrics()
    metrics.observe_reconcile("SecretNotFound")
    metrics.observe_reconcile(None)
    statuses = [
        {"conditions": [{"type": "Ready", "status": "False", "reason": "SecretNotFound"}], "name": "support-bot"},
        {"conditions": [{"type": "Ready", "status": "True"}], "name": "billing-bot"},
    ]
    metrics.watch_agents(lambda: statuses)
    text = generate_latest(metrics.registry).decode()
    labels = {name for family in text_string_to_metric_families(text) for s in family.samples for name in s.labels}
    assert labels <= BOUNDED_LABELS, labels - BOUNDED_LABELS
    assert "support-bot" not in text and "billing-bot" not in text
    assert 'agentry_operator_agents{condition="Ready",status="False"} 1.0' in text
