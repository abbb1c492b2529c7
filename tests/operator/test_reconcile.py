"""The real operator against the local control plane: create, update, scale, delete, drift, Secrets, restarts.

Each test runs its own `agentry-operator` process watching only the test's namespace. KWOK marks the pods
Running and Ready, so Deployments become available without a runtime in them.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from agent_operator.kinds import CHILD_KINDS

from .running import Agents

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

CHILDREN = ",".join(child.plural for child in CHILD_KINDS)


def _owner_uids(obj: dict[str, Any]) -> list[str]:
    return [ref["uid"] for ref in obj["metadata"].get("ownerReferences", []) if ref.get("controller")]


def _template_hash(deployment: dict[str, Any] | None) -> str:
    annotations = (deployment or {}).get("spec", {}).get("template", {}).get("metadata", {}).get("annotations", {})
    return str(annotations.get("agentry.dev/config-hash", ""))


# --- create, user view -------------------------------------------------------------------------


def test_create_makes_owned_children_and_a_ready_agent(agents: Agents) -> None:
    agents.secret("jwt", key="k" * 32)
    agents.apply("triage", replicas=2)

    agents.kubectl("wait", "--for=condition=Ready", "agentdeployment/triage", "--timeout=60s")

    body = agents.ready("triage")
    children = {(c["kind"], c["metadata"]["name"]) for c in agents.items(CHILDREN)}
    assert children == {
        ("ServiceAccount", "triage"),
        ("ConfigMap", "triage-config"),
        ("Service", "triage"),
        ("Deployment", "triage"),
        ("PodDisruptionBudget", "triage"),
    }
    assert all(_owner_uids(c) == [body["metadata"]["uid"]] for c in agents.items(CHILDREN))
    status = body["status"]
    assert (status["replicas"], status["readyReplicas"]) == (2, 2)
    assert status["url"] == f"http://triage.{agents.namespace}.svc:8080"
    assert status["selector"] == "app.kubernetes.io/instance=triage,app.kubernetes.io/name=agentry-agent"
    assert [e["reason"] for e in agents.events("triage") if e["reason"] == "Ready"]


def test_kubectl_get_agents_fills_the_printer_columns(agents: Agents) -> None:
    agents.secret("jwt", key="k" * 32)
    agents.apply("triage")
    agents.ready("triage")

    header, row = agents.kubectl("get", "agents").splitlines()
    columns = dict(zip(header.split(), row.split(), strict=True))
    assert columns["NAME"] == "triage"
    assert columns["MODEL"] == "test"
    assert columns["READY"] == "True"
    assert columns["REPLICAS"] == "1"
    assert columns["URL"] == f"http://triage.{agents.namespace}.svc:8080"


def _cells(table: str) -> dict[str, str]:
    """The one row of a kubectl table by column, cut where each header starts (a cell may be empty)."""
    header, row = table.splitlines()
    starts = [match.start() for match in re.finditer(r"\S+", header)]
    ends = [*starts[1:], None]
    return {header[a:b].strip(): row[a:b].strip() for a, b in zip(starts, ends, strict=True)}


def test_wide_columns_show_the_protocols_and_the_status_names_each_endpoint(agents: Agents) -> None:
    url = f"http://triage.{agents.namespace}.svc:8080"
    agents.secret("jwt", key="k" * 32)
    agents.apply("triage")
    agents.ready("triage")

    table = agents.kubectl("get", "agents", "-o", "wide")
    columns = _cells(table)
    assert (columns["PROTOCOLS"], columns["STREAMS"], columns["CONVERSATIONS"]) == ("openai,a2a,ag-ui", "0", "0"), table
    assert (agents.get("agentdeployment", "triage") or {})["status"]["endpoints"] == {
        "run": f"{url}/v1/run",
        "stream": f"{url}/v1/run/stream",
        "openai": f"{url}/v1",
        "a2a": f"{url}/.well-known/agent.json",
        "agUI": f"{url}/v1/ag-ui",
    }

    def narrowed() -> dict[str, Any] | None:
        status: dict[str, Any] = (agents.get("agentdeployment", "triage") or {}).get("status", {})
        return status if status.get("protocols") == "openai" else None

    agents.apply("triage", protocols=["openai"])
    status = agents.until(narrowed, what="status.protocols to follow spec.protocols")
    assert status["endpoints"] == {"run": f"{url}/v1/run", "stream": f"{url}/v1/run/stream", "openai": f"{url}/v1"}


# --- update, scale, delete ---------------------------------------------------------------------


def test_new_instructions_roll_the_pods(agents: Agents) -> None:
    agents.secret("jwt", key="k" * 32)
    agents.apply("triage")
    agents.ready("triage")
    before = _template_hash(agents.get("deployment", "triage"))
    old_pods = {p["metadata"]["name"] for p in agents.items("pods", "agentry.dev/agent=triage")}

    agents.apply("triage", agent={"model": "test", "instructions": "Answer in French."})

    agents.ready("triage", generation=2)
    assert _template_hash(agents.get("deployment", "triage")) not in ("", before)
    config = yaml.safe_load((agents.get("configmap", "triage-config") or {})["data"]["agent.yaml"])
    assert config["spec"]["agent"]["instructions"] == "Answer in French."
    agents.until(
        lambda: (
            not old_pods
            & {
                p["metadata"]["name"]
                for p in agents.items("pods", "agentry.dev/agent=triage")
                if not p["metadata"].get("deletionTimestamp")
            }
        ),
        what="the old pods to be replaced",
    )


def test_kubectl_scale_goes_through_the_scale_subresource(agents: Agents) -> None:
    agents.secret("jwt", key="k" * 32)
    agents.apply("triage")
    agents.ready("triage")
    assert agents.get("poddisruptionbudget", "triage") is None
    hash_before = _template_hash(agents.get("deployment", "triage"))

    agents.kubectl("scale", "agentdeployment/triage", "--replicas=3")

    agents.until(
        lambda: (agents.get("deployment", "triage") or {}).get("spec", {}).get("replicas") == 3,
        what="the Deployment to follow to 3 replicas",
    )
    agents.until(
        lambda: (agents.get("agentdeployment", "triage") or {}).get("status", {}).get("replicas") == 3,
        what="status.replicas to follow to 3",
    )
    agents.ready("triage")
    assert agents.get("poddisruptionbudget", "triage") is not None
    assert _template_hash(agents.get("deployment", "triage")) == hash_before  # scaling does not roll pods

    agents.kubectl("scale", "agentdeployment/triage", "--replicas=1")

    agents.until(lambda: agents.get("poddisruptionbudget", "triage") is None, what="the PDB to be deleted at 1")


@pytest.mark.parametrize("operator_running", [True, False], ids=["operator-running", "operator-down"])
def test_deleting_the_agent_garbage_collects_its_children(agents: Agents, operator_running: bool) -> None:
    agents.secret("jwt", key="k" * 32)
    agents.apply("triage", replicas=2)
    body = agents.ready("triage")
    assert not body["metadata"].get("finalizers")  # nothing waits for the operator
    if not operator_running:
        agents.operator.stop()

    agents.kubectl("delete", "agentdeployment", "triage", "--wait=true", "--timeout=30s")

    agents.until(
        lambda: not agents.items(CHILDREN + ",replicasets,pods", "agentry.dev/agent=triage"),
        what="the garbage collector to delete every child",
        timeout=90,
    )


# --- drift -------------------------------------------------------------------------------------


def test_deleted_children_are_restored(agents: Agents) -> None:
    agents.secret("jwt", key="k" * 32)
    agents.apply("triage")
    agents.ready("triage")
    uids = {c["kind"]: c["metadata"]["uid"] for c in agents.items(CHILDREN)}

    agents.kubectl("delete", "service,configmap,deployment,serviceaccount", "-l", "agentry.dev/agent=triage")

    def restored() -> bool:
        now = {c["kind"]: c["metadata"]["uid"] for c in agents.items(CHILDREN)}
        return set(now) == set(uids) and not set(now.values()) & set(uids.values())

    agents.until(restored, what="every deleted child to come back")
    agents.ready("triage")


def test_edited_children_are_put_back(agents: Agents) -> None:
    agents.secret("jwt", key="k" * 32)
    agents.apply("triage")
    agents.ready("triage")
    config = (agents.get("configmap", "triage-config") or {})["data"]["agent.yaml"]

    agents.kubectl("patch", "configmap", "triage-config", "--type=merge", "-p", '{"data":{"agent.yaml":"junk"}}')
    agents.kubectl("scale", "deployment/triage", "--replicas=4")
    agents.kubectl(
        "patch", "service", "triage", "--type=json", "-p", '[{"op":"replace","path":"/spec/ports/0/port","value":9999}]'
    )

    agents.until(
        lambda: (agents.get("configmap", "triage-config") or {}).get("data", {}).get("agent.yaml") == config,
        what="the ConfigMap to be restored",
    )
    agents.until(
        lambda: (agents.get("deployment", "triage") or {}).get("spec", {}).get("replicas") == 1,
        what="the Deployment replicas to be restored",
    )
    agents.until(
        lambda: _service_port(agents.get("service", "triage")) == 8080,  # None while it is recreated
        what="the Service port to be restored",
    )


def _service_port(service: dict[str, Any] | None) -> int | None:
    ports = (service or {}).get("spec", {}).get("ports") or [{}]
    port = ports[0].get("port")
    return int(port) if port is not None else None


# --- problems ----------------------------------------------------------------------------------


def test_a_missing_secret_is_reported_then_healed_when_it_appears(agents: Agents) -> None:
    agents.apply("triage")

    condition = agents.until(
        lambda: (c := agents.condition("triage")) and c["reason"] == "SecretNotFound" and c,
        what="Ready=False with reason SecretNotFound",
    )
    assert condition["status"] == "False"
    assert "Secret 'jwt' not found" in condition["message"]
    agents.until(
        lambda: [e for e in agents.events("triage") if e["reason"] == "SecretNotFound"], what="a SecretNotFound Event"
    )
    assert agents.get("deployment", "triage") is None  # nothing is applied while a Secret is missing

    agents.secret("jwt", key="k" * 32)

    agents.ready("triage")


@pytest.mark.parametrize(
    ("agent", "reason"),
    [
        ({"model": "acme-llm:large"}, "UnknownModelProvider"),
        ({"model": "test", "outputSchema": {"type": "object", "required": "answer"}}, "InvalidOutputSchema"),
    ],
)
def test_what_only_the_operator_can_judge_becomes_a_condition(
    agents: Agents, agent: dict[str, Any], reason: str
) -> None:
    agents.secret("jwt", key="k" * 32)
    agents.apply("triage", agent=agent)

    condition = agents.until(
        lambda: (c := agents.condition("triage")) and c["reason"] == reason and c,
        what=f"Ready=False with reason {reason}",
    )
    assert condition["status"] == "False"
    assert (agents.condition("triage", "Degraded") or {}).get("status") == "True"
    agents.until(lambda: [e for e in agents.events("triage") if e["reason"] == reason], what=f"a {reason} Event")

    agents.apply("triage")

    agents.ready("triage")


# --- operator restarts -------------------------------------------------------------------------


def test_a_killed_operator_converges_after_restart_without_duplicates(agents: Agents) -> None:
    agents.secret("jwt", key="k" * 32)
    agents.apply("first", replicas=2)
    agents.apply("second")
    agents.operator.stop(kill=True)  # mid-way: children of some agents may or may not exist yet

    agents.apply("first", replicas=3)
    agents.apply("third")
    agents.kubectl("delete", "service", "second", "--ignore-not-found")
    agents.operator.start()

    for name in ("first", "second", "third"):
        agents.ready(name)
    kinds = [(c["kind"], c["metadata"]["name"]) for c in agents.items(CHILDREN + ",replicasets")]
    assert len(kinds) == len(set(kinds))
    assert sorted(name for kind, name in kinds if kind == "Deployment") == ["first", "second", "third"]
    assert len([1 for kind, name in kinds if kind == "ReplicaSet" and name.startswith("first-")]) == 1
    assert (agents.get("deployment", "first") or {})["spec"]["replicas"] == 3
    assert agents.get("service", "second") is not None


def test_a_secret_deleted_later_is_noticed_and_healed_by_the_retry_loop(agents: Agents) -> None:
    agents.secret("jwt", key="k" * 32)
    agents.apply("triage")
    agents.ready("triage")

    agents.kubectl("delete", "secret", "jwt")
    agents.kubectl("delete", "service", "triage")  # any trigger will do; the drift one is the quickest

    agents.until(
        lambda: (c := agents.condition("triage")) and c["reason"] == "SecretNotFound",
        what="Ready=False with reason SecretNotFound",
    )
    assert agents.get("service", "triage") is None  # nothing is applied while a Secret is missing
    readies = len([e for e in agents.events("triage") if e["reason"] == "Ready"])

    agents.secret("jwt", key="k" * 32)  # no event of the operator's sees this: the retry loop must

    agents.ready("triage")
    agents.until(lambda: agents.get("service", "triage"), what="the Service to be restored")
    agents.until(
        lambda: len([e for e in agents.events("triage") if e["reason"] == "Ready"]) > readies, what="a new Ready Event"
    )
    assert "Event not posted" not in agents.operator.log.read_text()


# --- optional children -------------------------------------------------------------------------


def test_an_hpa_owns_the_replicas_and_goes_when_autoscaling_is_turned_off(agents: Agents) -> None:
    agents.secret("jwt", key="k" * 32)
    agents.apply(
        "triage",
        autoscaling={
            "enabled": True,
            "provider": "HPA",
            "minReplicas": 2,
            "maxReplicas": 4,
            "targetCPUUtilizationPercent": 60,
        },
    )

    agents.until(lambda: agents.get("horizontalpodautoscaler", "triage"), what="the HPA")
    agents.until(
        lambda: (agents.get("deployment", "triage") or {}).get("spec", {}).get("replicas") == 2,
        what="the HPA to bring the Deployment to minReplicas",
    )
    agents.ready("triage")
    deployment = json.loads(agents.kubectl("get", "deployment", "triage", "-o", "json", "--show-managed-fields"))
    ours = [m for m in deployment["metadata"]["managedFields"] if m["manager"] == "agentry-operator"]
    assert ours and all("f:replicas" not in m.get("fieldsV1", {}).get("f:spec", {}) for m in ours)

    agents.apply("triage", replicas=3)

    agents.until(lambda: agents.get("horizontalpodautoscaler", "triage") is None, what="the HPA to be deleted")
    agents.until(
        lambda: (agents.get("deployment", "triage") or {}).get("spec", {}).get("replicas") == 3,
        what="the operator to own the replicas again",
    )
    agents.ready("triage")


def test_network_policies_follow_the_operator_setting_across_restarts(agents: Agents) -> None:
    agents.secret("jwt", key="k" * 32)
    agents.operator.stop()
    agents.operator.extra_env["AGENTRY_NETWORK_POLICY"] = "true"
    agents.operator.start()
    agents.apply("triage")
    agents.ready("triage")
    policy = agents.until(lambda: agents.get("networkpolicy", "triage"), what="the NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "triage"

    agents.operator.stop()
    agents.operator.extra_env["AGENTRY_NETWORK_POLICY"] = "false"
    agents.operator.start()

    agents.until(
        lambda: agents.get("networkpolicy", "triage") is None,
        what="the restarted operator to delete the NetworkPolicy it no longer renders",
    )
