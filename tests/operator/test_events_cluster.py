"""Events posted through the operator's own API client, on the real API server: stored, truncated, never raising."""

from __future__ import annotations

import json

import pytest

from agent_operator.apply import KubeApi
from agent_operator.config import OperatorConfig
from agent_operator.events import COMPONENT, MAX_MESSAGE, agent_ref
from tests.kube import KubeCluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(120)]


async def test_an_event_is_stored_about_the_agent_and_cut_to_its_limit(
    agentry_crd: KubeCluster, kube_namespace: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(agentry_crd.kubeconfig))
    kube = KubeApi(config=OperatorConfig())
    ref = agent_ref(name="triage", namespace=kube_namespace, uid="0e6a1c1e-0000-4000-8000-000000000001")
    try:
        await kube.post_event(ref, type="Warning", reason="SecretNotFound", message="x" * (MAX_MESSAGE + 500))
        await kube.post_event(  # a namespace that does not exist: refused, logged, not raised
            agent_ref(name="triage", namespace="no-such-namespace", uid=ref.uid),
            type="Normal",
            reason="Ready",
            message="never stored",
        )
    finally:
        await kube.close()

    answer = agentry_crd.kubectl("get", "events", "-n", kube_namespace, "-o", "json").stdout
    (event,) = [e for e in json.loads(answer)["items"] if e["reason"] == "SecretNotFound"]
    assert event["type"] == "Warning"
    assert event["message"] == "x" * MAX_MESSAGE
    assert event["involvedObject"] == {
        "apiVersion": "agentry.dev/v1alpha1",
        "kind": "AgentDeployment",
        "name": "triage",
        "namespace": kube_namespace,
        "uid": ref.uid,
    }
    assert event["reportingComponent"] == event["source"]["component"] == COMPONENT
    assert "no-such-namespace/triage: Normal Event Ready dropped" in caplog.text
    assert "never stored" not in caplog.text  # the message is not logged
