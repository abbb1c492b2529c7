"""The operator's /metrics on the real operator: failed reconciles by reason, agents by condition.

A stuck agent (its Secret missing) must show on a dashboard: `agentry_operator_agents{condition="Ready",
status="False"}` counts it and the failures counter names why; both follow when the Secret appears.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.kube import KubeCluster, eventually
from tests.support.agents import manifest
from tests.support.operator import OperatorProcess

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def operator(agentry_crd: KubeCluster, kube_namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        kubeconfig=agentry_crd.kubeconfig, namespaces=(kube_namespace,), log=tmp_path / "operator.log"
    )
    process.start()
    yield process
    assert process.stop() == 0, process.tail()


def scrape(operator: OperatorProcess) -> Samples:
    """Every sample of the real /metrics, by name and sorted labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def agents(samples: Samples, condition: str, status: str) -> float | None:
    return samples.get(("agentry_operator_agents", (("condition", condition), ("status", status))))


def failures(samples: Samples, reason: str) -> float:
    return samples.get(("agentry_operator_reconcile_failures_total", (("reason", reason),)), 0.0)


def test_a_stuck_agent_shows_in_the_metrics_until_it_recovers(
    agentry_crd: KubeCluster, kube_namespace: str, operator: OperatorProcess
) -> None:
    def kubectl(*args: str, stdin: str | None = None) -> None:
        agentry_crd.kubectl(*args, "-n", kube_namespace, stdin=stdin)

    def wait(probe: Callable[[Samples], bool], what: str) -> Samples:
        def check() -> Samples | None:
            samples = scrape(operator)
            return samples if probe(samples) else None

        def context() -> str:
            status = agentry_crd.kubectl("get", "agentdeployment", "-n", kube_namespace, "-o", "yaml", check=False)
            return f"{status.stdout[-3000:]}\n--- operator log ---\n{operator.tail()}"

        return eventually(check, what=what, timeout=60, context=context)

    assert agents(scrape(operator), "Ready", "False") is None  # no agent yet: no series
    kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(manifest("stuck", kube_namespace)))

    stuck = wait(
        lambda s: agents(s, "Ready", "False") == 1 and failures(s, "SecretNotFound") >= 2,
        "the stuck agent and its retried failures in the metrics",
    )
    assert agents(stuck, "Ready", "True") == 0
    assert agents(stuck, "Ready", "Unknown") == 0

    kubectl("create", "secret", "generic", "jwt", "--from-literal=key=" + "k" * 32)
    healed = wait(lambda s: agents(s, "Ready", "True") == 1, "the agent Ready in the metrics")
    assert agents(healed, "Ready", "False") == 0
    assert failures(healed, "SecretNotFound") >= failures(stuck, "SecretNotFound")
    assert not [key for key in healed if "stuck" in str(key)]  # no agent name among the labels
