"""The agent's Deployment: the runtime image, its config and Secret files, probes, a locked-down pod."""

from __future__ import annotations

import math
from typing import Any

from agent_operator.config import OperatorConfig
from agentry_api.v1alpha1 import AgentDeployment, AutoscalingProvider, SecretKeyRef
from agentry_api.wiring import (
    CONFIG_DIR,
    CONFIG_KEY,
    CONFIG_PATH,
    DATA_DIR,
    RUNTIME_PORT,
    SECRETS_DIR,
    TERMINATION_LOG_PATH,
)

from .configmap import config_hash
from .labels import CONFIG_HASH, child_name, common_labels, configmap_name, metadata, selector_labels

#: UID and GID the runtime runs as; the image's user has the same numbers.
RUNTIME_UID = 10001
CONTAINER = "runtime"
#: Secret files are readable by the runtime's group only (fsGroup makes the files group-owned by it).
SECRET_FILE_MODE = 0o440


def hpa_owns_replicas(agent: AgentDeployment) -> bool:
    """An HPA decides the replica count, so the Deployment must leave spec.replicas to it."""
    scaling = agent.spec.autoscaling
    return scaling.enabled and scaling.provider == AutoscalingProvider.HPA


#: Seconds a terminating pod keeps serving before the runtime gets SIGTERM (endpoint removal is not instant).
PRE_STOP_SECONDS = 5
#: Size limit of the data volume (SQLite, pod-local state), in MiB; an emptyDir on the node's disk.
DATA_VOLUME_MIB = 1024
#: Node disk the container needs besides the data volume: its logs (the root filesystem is read-only).
LOG_MARGIN_MIB = 256
#: The ephemeral-storage request and limit: the kubelet evicts a pod whose emptyDirs and logs pass its limit,
#: so the limit covers a full data volume, and the request reserves the same on the node it is scheduled to.
EPHEMERAL_STORAGE = f"{DATA_VOLUME_MIB + LOG_MARGIN_MIB}Mi"
#: Default spread of an agent's pods: one node going down takes as few of them as possible (a preference,
#: so a one-node cluster still runs them all).
SPREAD_TOPOLOGY_KEY = "kubernetes.io/hostname"


def render_deployment(agent: AgentDeployment, config: OperatorConfig) -> dict[str, Any]:
    """The Deployment; spec.replicas is left out when an HPA owns it, so the two never fight."""
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(agent)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "revisionHistoryLimit": 5,
        "template": _pod_template(agent, config),
    }
    if not hpa_owns_replicas(agent):
        spec = {"replicas": agent.spec.desired_replicas(), **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(agent, name=child_name(agent)),
        "spec": spec,
    }


def _tracing_env(agent: AgentDeployment, config: OperatorConfig) -> list[dict[str, Any]]:
    """The collector and the pod's identity for the runtime's traces, in OpenTelemetry's own variables.

    The operator's default collector only for an agent that names none (the spec's own endpoint is in its
    config); nothing when tracing is off or no collector is known.
    """
    tracing = agent.spec.observability.tracing
    if not tracing.enabled or (tracing.endpoint is None and not config.otlp_endpoint):
        return []
    env = (
        [] if tracing.endpoint is not None else [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": config.otlp_endpoint}]
    )
    pod = "k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE)"
    return [*env, {"name": "OTEL_RESOURCE_ATTRIBUTES", "value": pod}]


def _pod_template(agent: AgentDeployment, config: OperatorConfig) -> dict[str, Any]:
    pod = agent.spec.pod
    spec: dict[str, Any] = {
        "serviceAccountName": child_name(agent),
        # The runtime never calls the Kubernetes API: no token in the pod.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNTIME_UID,
            "runAsGroup": RUNTIME_UID,
            "fsGroup": RUNTIME_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(agent, config)],
        "volumes": _volumes(agent),
        # The pre-stop pause, then the runtime's drain (the request timeout plus 5 s), then a margin.
        "terminationGracePeriodSeconds": PRE_STOP_SECONDS
        + math.ceil(agent.spec.concurrency.request_timeout_seconds)
        + 10,
    }
    optional = {
        "nodeSelector": dict(pod.node_selector),
        "tolerations": [toleration.wire() for toleration in pod.tolerations],
        "affinity": pod.affinity,
        "topologySpreadConstraints": _spread(agent),
        "imagePullSecrets": [ref.wire() for ref in pod.image_pull_secrets],
        "priorityClassName": pod.priority_class_name,
    }
    spec.update({key: value for key, value in optional.items() if value})
    annotations = {**pod.annotations, CONFIG_HASH: config_hash(agent)}
    return {"metadata": {"labels": {**pod.labels, **common_labels(agent)}, "annotations": annotations}, "spec": spec}


def _container(agent: AgentDeployment, config: OperatorConfig) -> dict[str, Any]:
    pod = agent.spec.pod
    return {
        "name": CONTAINER,
        "image": pod.image or config.runtime_image,
        "imagePullPolicy": pod.image_pull_policy,
        "command": ["agentry-runtime", "--config", CONFIG_PATH, "--port", str(RUNTIME_PORT)],
        "ports": [{"name": "http", "containerPort": RUNTIME_PORT, "protocol": "TCP"}],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            *_tracing_env(agent, config),
        ],
        "resources": _resources(agent),
        # Endpoints drop a terminating pod asynchronously: keep serving a moment before SIGTERM closes the port.
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRE_STOP_SECONDS)]}}},
        "livenessProbe": _probe("/healthz", period=10, failures=3),
        "readinessProbe": _probe("/readyz", period=5, failures=2),
        # Up to 3 minutes to start (imports, model clients, database pools) before liveness may kill the pod: a
        # runtime needs about 4 s of CPU to start, and 30 pods starting at once on a 2-core node took over 60 s
        # each, so a 60 s budget killed every first start and doubled the work (tests/bench/node_bench.py).
        # Readiness still keeps traffic away until it answers; a start that exits says why in the agent's status.
        "startupProbe": _probe("/healthz", period=2, failures=90),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": RUNTIME_UID,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": _mounts(agent),
        # A failed start writes its one-line reason here; the kubelet puts it in the container's status, where
        # the operator reads it for the agent's Ready condition. Without that file, the log's tail instead.
        "terminationMessagePath": TERMINATION_LOG_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def _resources(agent: AgentDeployment) -> dict[str, Any]:
    """spec.pod.resources, with an ephemeral-storage request and limit unless the spec sets its own."""
    resources = agent.spec.pod.resources.wire()
    for part in ("requests", "limits"):
        resources.setdefault(part, {}).setdefault("ephemeral-storage", EPHEMERAL_STORAGE)
    return resources


def _spread(agent: AgentDeployment) -> list[dict[str, Any]] | None:
    """The spec's own spread constraints, else a soft spread across nodes.

    The default applies only to an agent that may run more than one pod and sets no affinity of its own.
    """
    pod, spec = agent.spec.pod, agent.spec
    if pod.topology_spread_constraints is not None or pod.affinity:
        return pod.topology_spread_constraints
    most = spec.autoscaling.max_replicas if spec.autoscaling.enabled else spec.desired_replicas()
    if most <= 1:
        return None
    return [
        {
            "maxSkew": 1,
            "topologyKey": SPREAD_TOPOLOGY_KEY,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector_labels(agent)},
        }
    ]


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _mounts(agent: AgentDeployment) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}]
    if agent.spec.secret_refs():
        mounts.append({"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True})
    mounts += [{"name": "tmp", "mountPath": "/tmp"}, {"name": "data", "mountPath": DATA_DIR}]
    return mounts


def _volumes(agent: AgentDeployment) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        {
            "name": "config",
            "configMap": {"name": configmap_name(agent), "items": [{"key": CONFIG_KEY, "path": CONFIG_KEY}]},
        }
    ]
    refs = [ref for _, ref in agent.spec.secret_refs()]
    if refs:
        volumes.append({"name": "secrets", "projected": {"defaultMode": SECRET_FILE_MODE, "sources": _sources(refs)}})
    volumes += [
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        {"name": "data", "emptyDir": {"sizeLimit": f"{DATA_VOLUME_MIB}Mi"}},
    ]
    return volumes


def _sources(refs: list[SecretKeyRef]) -> list[dict[str, Any]]:
    """One projected source per Secret, each key at `<secret>/<key>` (the path the runtime reads)."""
    keys: dict[str, list[str]] = {}
    for ref in refs:
        if ref.key not in keys.setdefault(ref.name, []):
            keys[ref.name].append(ref.key)
    return [
        {"secret": {"name": name, "items": [{"key": key, "path": f"{name}/{key}"} for key in names]}}
        for name, names in keys.items()
    ]
