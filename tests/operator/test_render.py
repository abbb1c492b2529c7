"""Every render function: what each child says, and what it must never say (Secret values, root, replicas)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from lightkube import codecs

from agent_operator.config import OperatorConfig
from agent_operator.render import (
    Owner,
    config_hash,
    conflict_of,
    is_owned_by,
    may_write,
    render_children,
    render_configmap,
    render_deployment,
    render_hpa,
    render_network_policy,
    render_pdb,
    render_service,
    render_service_account,
    runtime_config,
    service_url,
    with_owner,
)
from agent_operator.render.labels import selector_string
from agentry_api import wiring
from agentry_api.wiring import CONFIG_DIR, CONFIG_KEY, DATA_DIR, RUNTIME_PORT, SECRETS_DIR
from tests.support.agents import agent

CONFIG = OperatorConfig(runtime_image="registry.local/agent-runtime:1.2.3")
HPA: dict[str, Any] = {
    "autoscaling": {
        "enabled": True,
        "provider": "HPA",
        "minReplicas": 2,
        "maxReplicas": 6,
        "targetCPUUtilizationPercent": 70,
    }
}
PRODUCTION: dict[str, Any] = {
    "services": {
        "database": {"urlSecretRef": {"name": "pg", "key": "url"}},
        "cache": {"urlSecretRef": {"name": "redis", "key": "url"}},
    },
    "security": {
        "auth": {"secretRef": {"name": "jwt", "key": "key"}},
        "privacy": {"mode": "hmac", "hmacKeySecretRef": {"name": "pg", "key": "pii"}},
    },
}
LABELS = {
    "app.kubernetes.io/name": "agentry-agent",
    "app.kubernetes.io/instance": "triage",
    "app.kubernetes.io/managed-by": "agentry",
    "agentry.dev/agent": "triage",
}


def _pod(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = _pod(obj)["containers"][0]
    return container


# --- every child -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "config", "kinds"),
    [
        ({}, CONFIG, ["ServiceAccount", "ConfigMap", "Service", "Deployment"]),
        ({"replicas": 3}, CONFIG, ["ServiceAccount", "ConfigMap", "Service", "Deployment", "PodDisruptionBudget"]),
        (
            HPA,
            CONFIG,
            ["ServiceAccount", "ConfigMap", "Service", "Deployment", "PodDisruptionBudget", "HorizontalPodAutoscaler"],
        ),
        (
            {},
            OperatorConfig(network_policy=True),
            ["ServiceAccount", "ConfigMap", "Service", "Deployment", "NetworkPolicy"],
        ),
    ],
)
def test_children_are_the_ones_the_spec_needs(spec: dict[str, Any], config: OperatorConfig, kinds: list[str]) -> None:
    assert [child["kind"] for child in render_children(agent(**spec), config)] == kinds


@pytest.mark.parametrize("spec", [{}, {"replicas": 3, **PRODUCTION}, HPA])
def test_every_child_is_namespaced_labelled_and_uses_only_real_fields(spec: dict[str, Any]) -> None:
    for child in render_children(agent(**spec), OperatorConfig(network_policy=True, operator_namespace="ops")):
        assert child["metadata"]["namespace"] == "team-a"
        assert child["metadata"]["labels"] == LABELS
        # The Kubernetes models drop fields they do not know: a misspelt field would not survive the round trip.
        assert codecs.from_dict(child).to_dict() == child  # type: ignore[no-untyped-call]


def test_rendering_is_pure_and_deterministic() -> None:
    assert render_children(agent(**PRODUCTION), CONFIG) == render_children(agent(**PRODUCTION), CONFIG)


# --- ConfigMap ---------------------------------------------------------------------------------


def test_configmap_holds_the_manifest_the_runtime_reads_and_never_a_secret_value() -> None:
    rendered = render_configmap(agent(**PRODUCTION), CONFIG)
    assert rendered["metadata"]["name"] == "triage-config"
    document = yaml.safe_load(rendered["data"][CONFIG_KEY])
    assert document["apiVersion"] == "agentry.dev/v1alpha1"
    assert document["kind"] == "AgentDeployment"
    assert document["metadata"] == {"name": "triage", "namespace": "team-a"}
    assert document["spec"]["services"]["database"]["urlSecretRef"] == {"name": "pg", "key": "url"}
    assert "status" not in document


def test_config_hash_follows_the_config_but_not_the_replica_count() -> None:
    base = config_hash(agent())
    assert config_hash(agent(agent={"model": "test", "instructions": "Something else."})) != base
    assert config_hash(agent(replicas=4)) == base
    assert "replicas" not in runtime_config(agent(replicas=4))


# --- Deployment --------------------------------------------------------------------------------


def test_deployment_runs_the_operator_default_image_unless_the_spec_names_one() -> None:
    assert _container(render_deployment(agent(), CONFIG))["image"] == "registry.local/agent-runtime:1.2.3"
    custom = agent(pod={"image": "mirror.local/runtime:9", "imagePullPolicy": "Always"})
    assert _container(render_deployment(custom, CONFIG))["image"] == "mirror.local/runtime:9"
    assert _container(render_deployment(custom, CONFIG))["imagePullPolicy"] == "Always"


def test_deployment_starts_the_runtime_on_its_port_with_its_config() -> None:
    container = _container(render_deployment(agent(), CONFIG))
    assert container["command"] == [
        "agentry-runtime",
        "--config",
        f"{CONFIG_DIR}/{CONFIG_KEY}",
        "--port",
        str(RUNTIME_PORT),
    ]
    assert container["ports"] == [{"name": "http", "containerPort": RUNTIME_PORT, "protocol": "TCP"}]


@pytest.mark.parametrize(
    ("spec", "replicas"),
    [({}, 1), ({"replicas": 4}, 4), ({"replicas": 0}, 0), ({"autoscaling": {"enabled": True, "minReplicas": 2}}, 2)],
)
def test_deployment_replicas_come_from_the_spec(spec: dict[str, Any], replicas: int) -> None:
    assert render_deployment(agent(**spec), CONFIG)["spec"]["replicas"] == replicas


def test_deployment_leaves_replicas_to_an_hpa() -> None:
    assert "replicas" not in render_deployment(agent(**HPA), CONFIG)["spec"]


def test_deployment_rolls_one_extra_pod_at_a_time_and_never_goes_below_the_count() -> None:
    strategy = render_deployment(agent(), CONFIG)["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}


def test_pod_template_carries_the_config_hash_so_a_config_change_rolls_the_pods() -> None:
    before = render_deployment(agent(), CONFIG)["spec"]["template"]["metadata"]["annotations"]
    after = render_deployment(agent(agent={"model": "test", "instructions": "New."}), CONFIG)
    assert before["agentry.dev/config-hash"] == config_hash(agent())
    assert (
        after["spec"]["template"]["metadata"]["annotations"]["agentry.dev/config-hash"]
        != (before["agentry.dev/config-hash"])
    )


def test_pods_are_selected_by_stable_labels_and_labelled_for_the_pod_runner() -> None:
    rendered = render_deployment(agent(), CONFIG)
    assert rendered["spec"]["selector"] == {
        "matchLabels": {"app.kubernetes.io/name": "agentry-agent", "app.kubernetes.io/instance": "triage"}
    }
    assert rendered["spec"]["template"]["metadata"]["labels"] == LABELS


def test_spec_pod_labels_and_annotations_are_added_but_the_operator_labels_win() -> None:
    pod = {"labels": {"team": "a", "agentry.dev/agent": "spoofed"}, "annotations": {"prometheus.io/scrape": "true"}}
    meta = render_deployment(agent(pod=pod), CONFIG)["spec"]["template"]["metadata"]
    assert meta["labels"] == {**LABELS, "team": "a"}
    assert meta["annotations"]["prometheus.io/scrape"] == "true"
    assert "agentry.dev/config-hash" in meta["annotations"]


def test_scheduling_settings_pass_through_and_absent_ones_stay_out() -> None:
    pod = {
        "nodeSelector": {"pool": "agents"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
        "imagePullSecrets": [{"name": "registry"}],
        "priorityClassName": "agents",
    }
    spec = _pod(render_deployment(agent(pod=pod), CONFIG))
    assert spec["nodeSelector"] == {"pool": "agents"}
    assert spec["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["affinity"] == pod["affinity"]
    assert spec["imagePullSecrets"] == [{"name": "registry"}]
    assert spec["priorityClassName"] == "agents"
    bare = _pod(render_deployment(agent(), CONFIG))
    assert not {"nodeSelector", "tolerations", "affinity", "imagePullSecrets", "priorityClassName"} & set(bare)


def test_resources_come_from_the_spec() -> None:
    resources = {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    rendered = _container(render_deployment(agent(pod={"resources": resources}), CONFIG))["resources"]
    assert {
        part: {k: v for k, v in values.items() if k != "ephemeral-storage"} for part, values in rendered.items()
    } == (resources)


def _mebibytes(quantity: str) -> int:
    units = {"Mi": 1, "Gi": 1024}
    return int(quantity[:-2]) * units[quantity[-2:]]


def test_ephemeral_storage_request_and_limit_cover_the_data_volume() -> None:
    rendered = render_deployment(agent(), CONFIG)
    volumes = {volume["name"]: volume for volume in _pod(rendered)["volumes"]}
    data = _mebibytes(volumes["data"]["emptyDir"]["sizeLimit"])
    resources = _container(rendered)["resources"]
    request, limit = resources["requests"]["ephemeral-storage"], resources["limits"]["ephemeral-storage"]
    assert data <= _mebibytes(request) <= _mebibytes(limit)
    assert _mebibytes(limit) > data  # the container's logs are counted too
    assert volumes["tmp"]["emptyDir"]["medium"] == "Memory"  # counted against memory, not the node's disk


def test_ephemeral_storage_the_spec_sets_wins() -> None:
    resources = {"requests": {"ephemeral-storage": "2Gi"}, "limits": {"ephemeral-storage": "4Gi"}}
    rendered = _container(render_deployment(agent(pod={"resources": resources}), CONFIG))["resources"]
    assert rendered["requests"]["ephemeral-storage"] == "2Gi"
    assert rendered["limits"]["ephemeral-storage"] == "4Gi"


SPREAD = [
    {
        "maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {
            "matchLabels": {"app.kubernetes.io/name": "agentry-agent", "app.kubernetes.io/instance": "triage"}
        },
    }
]


@pytest.mark.parametrize(
    ("spec", "spread"),
    [
        ({}, None),
        ({"replicas": 1}, None),
        ({"replicas": 2}, SPREAD),
        ({"replicas": 1, "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 3}}, SPREAD),
        ({"autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 1}}, None),
        ({**HPA}, SPREAD),
        ({"replicas": 3, "pod": {"affinity": {"nodeAffinity": {"x": 1}}}}, None),
        ({"replicas": 3, "pod": {"topologySpreadConstraints": []}}, None),
        (
            {"replicas": 3, "pod": {"topologySpreadConstraints": [{"maxSkew": 2, "topologyKey": "zone"}]}},
            [{"maxSkew": 2, "topologyKey": "zone"}],
        ),
    ],
    ids=["default", "one", "two", "autoscaling-to-3", "autoscaling-to-1", "hpa", "own-affinity", "off", "own-spread"],
)
def test_pods_spread_across_nodes_when_there_can_be_more_than_one(
    spec: dict[str, Any], spread: list[dict[str, Any]] | None
) -> None:
    pod = _pod(render_deployment(agent(**spec), CONFIG))
    assert pod.get("topologySpreadConstraints") == spread


def test_the_default_spread_selects_exactly_the_agents_pods() -> None:
    rendered = render_deployment(agent(replicas=2), CONFIG)
    selector = _pod(rendered)["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"]
    assert selector == rendered["spec"]["selector"]["matchLabels"]
    assert selector.items() <= rendered["spec"]["template"]["metadata"]["labels"].items()


def test_probes_hit_the_runtime_liveness_readiness_and_startup_endpoints() -> None:
    container = _container(render_deployment(agent(), CONFIG))
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 180, "slow starts on a busy node are not killed"


def test_pod_runs_restricted() -> None:
    rendered = render_deployment(agent(), CONFIG)
    pod, container = _pod(rendered), _container(rendered)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "triage"
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["runAsNonRoot"] is True


def test_config_is_mounted_from_the_configmap_and_tmp_and_data_are_writable() -> None:
    rendered = render_deployment(agent(), CONFIG)
    volumes = {volume["name"]: volume for volume in _pod(rendered)["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in _container(rendered)["volumeMounts"]}
    assert volumes["config"]["configMap"] == {
        "name": "triage-config",
        "items": [{"key": CONFIG_KEY, "path": CONFIG_KEY}],
    }
    assert mounts[CONFIG_DIR] == {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert "emptyDir" in volumes[mounts[DATA_DIR]["name"]]


def test_each_secret_key_is_projected_as_a_file_where_the_runtime_reads_it() -> None:
    rendered = render_deployment(agent(**PRODUCTION), CONFIG)
    volumes = {volume["name"]: volume for volume in _pod(rendered)["volumes"]}
    sources = volumes["secrets"]["projected"]["sources"]
    files = {(s["secret"]["name"], item["key"]): item["path"] for s in sources for item in s["secret"]["items"]}
    assert files == {
        ("pg", "url"): "pg/url",
        ("pg", "pii"): "pg/pii",
        ("redis", "url"): "redis/url",
        ("jwt", "key"): "jwt/key",
    }
    assert len(sources) == 3  # one source per Secret, however many keys
    mount = next(m for m in _container(rendered)["volumeMounts"] if m["name"] == "secrets")
    assert mount == {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True}


def test_mcp_header_secrets_are_projected_with_the_others() -> None:
    header = {"name": "Authorization", "secretRef": {"name": "mcp", "key": "token"}}
    toolsets = [{"name": "tickets", "mcp": {"url": "http://mcp:8000/mcp", "headers": [header]}}]
    rendered = render_deployment(agent(agent={"model": "test", "toolsets": toolsets}), CONFIG)
    volumes = {volume["name"]: volume for volume in _pod(rendered)["volumes"]}
    sources = volumes["secrets"]["projected"]["sources"]
    assert {"secret": {"name": "mcp", "items": [{"key": "token", "path": "mcp/token"}]}} in sources


def test_a_code_agent_runs_the_users_image_with_the_runtime_command() -> None:
    code_agent = agent(agent={"code": {"entrypoint": "support_bot.agent:agent"}}, pod={"image": "registry/bot:1.2"})
    container = _container(render_deployment(code_agent, CONFIG))
    assert container["image"] == "registry/bot:1.2"
    assert container["command"][0] == "agentry-runtime"


def test_no_secret_volume_without_secret_references() -> None:
    bare = agent(security={"auth": {"mode": "none"}})
    assert "secrets" not in {volume["name"] for volume in _pod(render_deployment(bare, CONFIG))["volumes"]}


# --- Service, ServiceAccount -------------------------------------------------------------------


def test_service_exposes_the_runtime_port_to_the_agents_pods() -> None:
    rendered = render_service(agent(), CONFIG)
    assert rendered["metadata"]["name"] == "triage"
    assert rendered["spec"]["selector"] == render_deployment(agent(), CONFIG)["spec"]["selector"]["matchLabels"]
    assert rendered["spec"]["ports"] == [
        {"name": "http", "port": RUNTIME_PORT, "targetPort": "http", "protocol": "TCP", "appProtocol": "http"}
    ]
    assert service_url(agent()) == f"http://triage.team-a.svc:{RUNTIME_PORT}"


def test_service_account_mounts_no_token() -> None:
    rendered = render_service_account(agent(), CONFIG)
    assert rendered["metadata"]["name"] == "triage"
    assert rendered["automountServiceAccountToken"] is False


# --- PDB, HPA, NetworkPolicy -------------------------------------------------------------------


def test_pdb_lets_one_pod_go_at_a_time() -> None:
    rendered = render_pdb(agent(replicas=3), CONFIG)
    assert rendered["apiVersion"] == "policy/v1"
    assert rendered["spec"] == {
        "maxUnavailable": 1,
        "selector": {
            "matchLabels": {"app.kubernetes.io/name": "agentry-agent", "app.kubernetes.io/instance": "triage"}
        },
    }


def test_hpa_targets_the_deployment_within_the_spec_bounds() -> None:
    rendered = render_hpa(agent(**HPA), CONFIG)
    assert rendered["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "triage"}
    assert (rendered["spec"]["minReplicas"], rendered["spec"]["maxReplicas"]) == (2, 6)
    assert rendered["spec"]["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert rendered["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300


def test_operator_autoscaling_renders_no_hpa() -> None:
    operator_scaled = agent(autoscaling={"enabled": True, "minReplicas": 1, "maxReplicas": 4})
    assert "HorizontalPodAutoscaler" not in [c["kind"] for c in render_children(operator_scaled, CONFIG)]


@pytest.mark.parametrize(
    ("operator_namespace", "peers"),
    [
        ("", [{"podSelector": {}}]),
        ("team-a", [{"podSelector": {}}]),
        ("ops", [{"podSelector": {}}, {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ops"}}}]),
    ],
)
def test_network_policy_admits_the_namespace_and_the_operator(
    operator_namespace: str, peers: list[dict[str, Any]]
) -> None:
    config = OperatorConfig(network_policy=True, operator_namespace=operator_namespace)
    spec = render_network_policy(agent(), config)["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    assert spec["ingress"] == [{"from": peers, "ports": [{"protocol": "TCP", "port": RUNTIME_PORT}]}]


# --- ownership ---------------------------------------------------------------------------------


def test_owner_reference_makes_the_agent_the_controller_and_leaves_the_input_alone() -> None:
    rendered = render_service(agent(), CONFIG)
    owned = with_owner(rendered, owner=Owner(name="triage", uid="u-1"))
    assert "ownerReferences" not in rendered["metadata"]
    assert owned["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "agentry.dev/v1alpha1",
            "kind": "AgentDeployment",
            "name": "triage",
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert is_owned_by(owned, uid="u-1")
    assert not is_owned_by(owned, uid="u-2")
    assert not is_owned_by(rendered, uid="u-1")


OURS = Owner(name="triage", uid="u-1")
AGENTRY_LABELS = {"app.kubernetes.io/managed-by": "agentry", "agentry.dev/agent": "triage"}


def _stored(*, labels: dict[str, str] | None = None, controller: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "triage", "namespace": "team-a", "labels": labels or {}}
    if controller is not None:
        meta["ownerReferences"] = [{"controller": True, "blockOwnerDeletion": True, **controller}]
    return {"metadata": meta}


def _agent_ref(name: str, uid: str) -> dict[str, Any]:
    return {"apiVersion": "agentry.dev/v1alpha1", "kind": "AgentDeployment", "name": name, "uid": uid}


@pytest.mark.parametrize(
    ("stored", "writable", "holder"),
    [
        (_stored(labels=AGENTRY_LABELS, controller=_agent_ref("triage", "u-1")), True, None),
        (_stored(controller=_agent_ref("triage", "u-1")), True, None),  # labels stripped by hand: still ours
        (_stored(labels=AGENTRY_LABELS), True, None),  # orphaned (--cascade=orphan removes the reference)
        (_stored(labels=AGENTRY_LABELS, controller=_agent_ref("triage", "u-0")), True, None),  # earlier agent
        (_stored(), False, "not managed by Agentry"),
        (_stored(labels={"app.kubernetes.io/managed-by": "agentry"}), False, "not managed by Agentry"),
        (_stored(labels=AGENTRY_LABELS, controller=_agent_ref("other", "u-9")), False, "AgentDeployment other"),
        (_stored(controller=_agent_ref("other", "u-9")), False, "controlled by AgentDeployment other"),
        (
            _stored(labels={**AGENTRY_LABELS, "agentry.dev/agent": "other"}),
            False,
            "not managed by Agentry",
        ),
        (
            _stored(labels=AGENTRY_LABELS, controller={"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}),
            False,
            "controlled by Deployment web",
        ),
        (
            _stored(labels=AGENTRY_LABELS, controller={**_agent_ref("triage", "u-0"), "apiVersion": "example.com/v1"}),
            False,
            "controlled by AgentDeployment triage",
        ),
    ],
)
def test_only_the_agents_own_children_and_its_orphans_may_be_written(
    stored: dict[str, Any], writable: bool, holder: str | None
) -> None:
    assert may_write(stored, owner=OURS) is writable
    conflict = conflict_of("ConfigMap", stored, owner=OURS)
    if holder is None:
        assert conflict is None
    else:
        assert conflict is not None
        assert holder in conflict.holder
        assert conflict.message().startswith(f"ConfigMap team-a/triage already exists and is {conflict.holder}")


def test_an_absent_child_is_no_conflict() -> None:
    assert conflict_of("Service", None, owner=OURS) is None


def test_selector_string_is_what_kubectl_scale_needs() -> None:
    assert selector_string(agent()) == "app.kubernetes.io/instance=triage,app.kubernetes.io/name=agentry-agent"


def test_termination_leaves_time_to_drain_after_the_pre_stop_pause() -> None:
    deployment = render_deployment(agent(concurrency={"requestTimeoutSeconds": 42.5}), CONFIG)
    pod = deployment["spec"]["template"]["spec"]
    assert _container(deployment)["lifecycle"] == {"preStop": {"exec": {"command": ["sleep", "5"]}}}
    assert pod["terminationGracePeriodSeconds"] == 5 + 43 + 10


def test_a_failed_start_reaches_the_container_status_through_the_termination_message() -> None:
    container = _container(render_deployment(agent(), CONFIG))
    assert container["terminationMessagePath"] == "/dev/termination-log" == wiring.TERMINATION_LOG_PATH
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


COLLECTOR = "http://otel-collector.observability:4318"


def _env(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item.get("value") for item in container["env"]}


@pytest.mark.parametrize(
    ("tracing", "default", "expected"),
    [
        ({}, "", {}),  # no collector anywhere: not traced, no variable
        ({}, COLLECTOR, {"OTEL_EXPORTER_OTLP_ENDPOINT": COLLECTOR}),  # the operator's default
        ({"endpoint": "http://mine:4318"}, COLLECTOR, {}),  # the spec's own (in its config), not overridden
        ({"enabled": False}, COLLECTOR, {}),  # opted out
    ],
)
def test_the_operators_default_collector_reaches_agents_that_name_none(
    tracing: dict[str, Any], default: str, expected: dict[str, str]
) -> None:
    config = OperatorConfig(otlp_endpoint=default)
    env = _env(render_deployment(agent(observability={"tracing": tracing}), config))
    assert {k: v for k, v in env.items() if k == "OTEL_EXPORTER_OTLP_ENDPOINT"} == expected
    traced = bool(expected) or "endpoint" in tracing
    assert ("OTEL_RESOURCE_ATTRIBUTES" in env) is traced
    if traced:
        assert env["OTEL_RESOURCE_ATTRIBUTES"] == "k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE)"
