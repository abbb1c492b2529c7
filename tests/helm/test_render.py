"""The chart offline: lint, `helm template` over a matrix of values, the CRD copy, and values the schema refuses."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent_operator.config import ENV_PREFIX, OperatorConfig
from agent_operator.kinds import CHILD_KINDS
from tests.helm.chart import CHART, NAMESPACE, ROOT, helm, objects, one, pick, render, values_args

SOURCE_CRD = ROOT / "crds" / "agentry.dev_agentdeployments.yaml"
CHART_CRD = CHART / "files" / "crds" / SOURCE_CRD.name

MATRIX: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"watchNamespaces": ["team-a", "team-b"]},
    "crds-off": {"crds": {"enabled": False}},
    "crds-not-kept": {"crds": {"keep": False}},
    "servicemonitor": {
        "metrics": {"enabled": True, "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}
    },
    "metrics-off": {"metrics": {"enabled": False}},
    "custom": {
        "image": {"repository": "registry.example.com/agentry", "tag": "dev", "pullPolicy": "Always"},
        "runtimeImage": {"repository": "registry.example.com/runtime", "digest": "sha256:" + "a" * 64},
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": 2, "memory": "2Gi"}},
        "serviceAccount": {"name": "ops", "annotations": {"example.com/role": "agentry"}},
        "operator": {"logFormat": "text", "logLevel": "debug", "extraEnv": [{"name": "EXTRA", "value": "1"}]},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}
                    ]
                }
            }
        },
        "priorityClassName": "system-cluster-critical",
        "tracing": {"endpoint": "http://otel-collector.observability:4318"},
    },
    "long-names": {"nameOverride": "n" * 63, "watchNamespaces": ["w" * 63]},
}


@pytest.fixture(scope="module")
def renderings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("values")
    return {case: objects(render(values, tmp)) for case, values in MATRIX.items()}


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return containers[0]


def _env(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in _container(docs)["env"]}


def test_lint_strict(tmp_path: Path) -> None:
    for values in MATRIX.values():
        helm("lint", "--strict", str(CHART), *values_args(values, tmp_path))


@pytest.mark.parametrize("case", list(MATRIX))
def test_operator_deployment(renderings: dict[str, list[dict[str, Any]]], case: str) -> None:
    docs = renderings[case]
    deployment = one(docs, "Deployment")
    spec = deployment["spec"]
    assert (spec["replicas"], spec["strategy"]) == (1, {"type": "Recreate"})
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["resources"]["requests"]
    assert pod["serviceAccountName"] == one(docs, "ServiceAccount")["metadata"]["name"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("case", list(MATRIX))
def test_names_fit_63_characters(renderings: dict[str, list[dict[str, Any]]], case: str) -> None:
    for doc in renderings[case]:
        assert len(doc["metadata"]["name"]) <= 63, doc["metadata"]["name"]
        assert all(len(value) <= 63 for value in doc["metadata"].get("labels", {}).values())


def test_default_image_and_environment(renderings: dict[str, list[dict[str, Any]]]) -> None:
    docs = renderings["defaults"]
    assert _container(docs)["image"] == "ghcr.io/agentry/operator:0.1.0"
    env = _env(docs)
    assert env["AGENTRY_NAMESPACES"] == ""
    assert env["AGENTRY_RUNTIME_IMAGE"] == "ghcr.io/agentry/agent-runtime:0.1.0"
    assert env["AGENTRY_LOG_FORMAT"] == "json"
    assert env["AGENTRY_OTLP_ENDPOINT"] == "" and "OTEL_EXPORTER_OTLP_ENDPOINT" not in env  # no tracing by default


def test_custom_values_arrive(renderings: dict[str, list[dict[str, Any]]]) -> None:
    docs = renderings["custom"]
    container = _container(docs)
    assert (container["image"], container["imagePullPolicy"]) == ("registry.example.com/agentry:dev", "Always")
    assert container["resources"] == MATRIX["custom"]["resources"]
    env = _env(docs)
    assert env["AGENTRY_RUNTIME_IMAGE"] == "registry.example.com/runtime@sha256:" + "a" * 64
    assert (env["AGENTRY_LOG_FORMAT"], env["EXTRA"]) == ("text", "1")
    collector = "http://otel-collector.observability:4318"  # the agents' default, and the operator's own traces
    assert env["AGENTRY_OTLP_ENDPOINT"] == env["OTEL_EXPORTER_OTLP_ENDPOINT"] == collector
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "ops"
    assert pod["tolerations"] == MATRIX["custom"]["tolerations"]
    assert pod["priorityClassName"] == "system-cluster-critical"


@pytest.mark.parametrize("case", ["defaults", "namespaced", "custom"])
def test_operator_accepts_the_environment(renderings: dict[str, list[dict[str, Any]]], case: str) -> None:
    """Every AGENTRY_* variable the chart sets is a setting the operator reads, with a value it accepts."""
    env = {k: v for k, v in _env(renderings[case]).items() if isinstance(v, str)}
    fields = {ENV_PREFIX + f.name.upper() for f in dataclasses.fields(OperatorConfig)}
    assert {name for name in env if name.startswith(ENV_PREFIX)} <= fields
    config = OperatorConfig.from_env(env)
    assert config.namespaces == tuple(MATRIX[case].get("watchNamespaces", ()))
    assert config.liveness_endpoint == "http://0.0.0.0:8080/healthz"
    assert "AGENTRY_OPERATOR_NAMESPACE" in _env(renderings[case])


def test_cluster_wide_rbac(renderings: dict[str, list[dict[str, Any]]]) -> None:
    docs = renderings["defaults"]
    assert pick(docs, "Role") == [] and pick(docs, "RoleBinding") == []
    role = one(docs, "ClusterRole")
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    sa = one(docs, "ServiceAccount")["metadata"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["name"], "namespace": NAMESPACE}]
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert {"agentdeployments", "deployments", "secrets", "customresourcedefinitions"} <= resources
    assert not any("*" in rule["verbs"] or "*" in rule["resources"] for rule in role["rules"])


def test_namespaced_rbac(renderings: dict[str, list[dict[str, Any]]]) -> None:
    docs = renderings["namespaced"]
    roles = pick(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in pick(docs, "RoleBinding")) == ["team-a", "team-b"]
    cluster_resources = {r for rule in one(docs, "ClusterRole")["rules"] for r in rule["resources"]}
    assert cluster_resources == {"customresourcedefinitions", "namespaces"}
    role_resources = {r for rule in roles[0]["rules"] for r in rule["resources"]}
    assert {"agentdeployments", "secrets", "pods", "events"} <= role_resources
    assert _env(docs)["AGENTRY_NAMESPACES"] == "team-a,team-b"


def test_chart_crd_copy_is_identical_to_the_generated_crd() -> None:
    assert CHART_CRD.read_bytes() == SOURCE_CRD.read_bytes(), f"run: cp {SOURCE_CRD} {CHART_CRD}"


@pytest.mark.parametrize("case", ["defaults", "crds-not-kept"])
def test_rendered_crd_is_the_generated_crd(renderings: dict[str, list[dict[str, Any]]], case: str) -> None:
    source = yaml.safe_load(SOURCE_CRD.read_text())
    crd = one(renderings[case], "CustomResourceDefinition")
    assert crd["spec"] == source["spec"]
    assert crd["metadata"]["name"] == source["metadata"]["name"]
    assert source["metadata"]["labels"].items() <= crd["metadata"]["labels"].items()
    annotations = crd["metadata"].get("annotations", {})
    assert annotations.get("helm.sh/resource-policy") == ("keep" if case == "defaults" else None)


def test_crds_disabled(renderings: dict[str, list[dict[str, Any]]]) -> None:
    assert pick(renderings["crds-off"], "CustomResourceDefinition") == []


def test_servicemonitor(renderings: dict[str, list[dict[str, Any]]]) -> None:
    assert pick(renderings["defaults"], "ServiceMonitor") == []
    docs = renderings["servicemonitor"]
    monitor = one(docs, "ServiceMonitor")
    service = one(docs, "Service")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"] == "metrics"


def test_metrics_on_by_default(renderings: dict[str, list[dict[str, Any]]]) -> None:
    docs = renderings["defaults"]
    assert _env(docs)["AGENTRY_METRICS_ENDPOINT"] == "http://0.0.0.0:9090/metrics"
    assert one(docs, "Service")["spec"]["ports"][0]["port"] == 9090
    assert [p["name"] for p in _container(docs)["ports"]] == ["health", "metrics"]


def test_metrics_off(renderings: dict[str, list[dict[str, Any]]]) -> None:
    docs = renderings["metrics-off"]
    assert _env(docs)["AGENTRY_METRICS_ENDPOINT"] == ""
    assert pick(docs, "Service") == []
    assert [p["name"] for p in _container(docs)["ports"]] == ["health"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"crds": {"enable": True}}, "at '/crds': additional properties 'enable' not allowed"),
        ({"crds": {"keep": "yes"}}, "at '/crds/keep': got string, want boolean"),
        ({"watchNamespace": ["team-a"]}, "additional properties 'watchNamespace' not allowed"),
        ({"watchNamespaces": ["Team_A"]}, "at '/watchNamespaces/0'"),
        ({"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy'"),
        ({"resources": {"limits": {"memory": "lots"}}}, "at '/resources/limits/memory'"),
        ({"metrics": {"port": "9090"}}, "at '/metrics/port': got string, want integer"),
    ],
)
def test_schema_refuses_bad_values(tmp_path: Path, values: dict[str, Any], message: str) -> None:
    done = helm("template", "agentry", str(CHART), *values_args(values, tmp_path), check=False)
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr
    assert message in done.stderr, done.stderr


def test_servicemonitor_needs_metrics(tmp_path: Path) -> None:
    values = {"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}}
    done = helm("template", "agentry", str(CHART), *values_args(values, tmp_path), check=False)
    assert done.returncode != 0
    assert "metrics.serviceMonitor.enabled needs metrics.enabled" in done.stderr


def test_existing_service_account_needs_a_name(tmp_path: Path) -> None:
    done = helm(
        "template", "agentry", str(CHART), *values_args({"serviceAccount": {"create": False}}, tmp_path), check=False
    )
    assert "serviceAccount.name is required when serviceAccount.create is false" in done.stderr


def test_notes_warn_first(tmp_path: Path) -> None:
    notes = helm(
        "install", "agentry", str(CHART), "--dry-run=client", *values_args({"crds": {"keep": False}}, tmp_path)
    ).stdout
    text = notes[notes.index("NOTES:") :].splitlines()[1:]
    assert text[0].startswith("WARNING: crds.keep is false")
    assert any("kubectl get agents" in line for line in text)
    assert any("/v1/run" in line for line in text)
    assert any("jsonpath='{.status.endpoints}'" in line for line in text)


def test_works_as_a_subchart(tmp_path: Path) -> None:
    """A parent chart passes `global` to its subcharts; the closed schema must still accept it."""
    parent = tmp_path / "platform"
    shutil.copytree(CHART, parent / "charts" / "agentry")
    (parent / "Chart.yaml").write_text(
        "apiVersion: v2\nname: platform\nversion: 1.0.0\ndependencies:\n  - name: agentry\n    version: 0.1.0\n"
    )
    values = {"global": {"imageRegistry": "registry.example.com"}, "agentry": {"crds": {"keep": True}}}
    (parent / "values.yaml").write_text(yaml.safe_dump(values))
    docs = objects(helm("template", "platform", str(parent), "--namespace", NAMESPACE).stdout)
    assert one(docs, "Deployment")["metadata"]["name"] == "platform-agentry"


def _grants(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


@pytest.mark.parametrize("case", ["defaults", "namespaced"])
def test_rbac_covers_every_kind_the_operator_watches_and_applies(
    renderings: dict[str, list[dict[str, Any]]], case: str
) -> None:
    """A child kind added to the operator without a rule here fails fast, before the cluster tests."""
    docs = renderings[case]
    role = pick(docs, "Role")[0] if case == "namespaced" else one(docs, "ClusterRole")
    granted = _grants(role["rules"])
    for child in CHILD_KINDS:
        assert {"get", "list", "watch", "create", "patch", "delete"} <= granted[(child.group, child.plural)], (
            child.plural
        )
    for api_version in {child.api_version for child in CHILD_KINDS}:
        group = api_version.rpartition("/")[0]
        assert any(g == group for g, _ in granted), api_version
    assert granted[("agentry.dev", "agentdeployments/status")] == {"patch"}
    assert granted[("agentry.dev", "agentdeployments/scale")] == {"patch"}
    assert granted[("", "secrets")] == {"get"}
