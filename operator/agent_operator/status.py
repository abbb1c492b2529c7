"""Status of an agent from what was observed: pure, with the clock passed in.

kstatus conventions, so `kubectl wait --for=condition=Ready`, Argo CD and Flux read it: Ready is True only
when the Deployment has rolled out the generation the status names and every desired pod is available;
Progressing is True while that is under way; Degraded is True when it cannot finish; Stalled is present (and
True) only while a person must act. lastTransitionTime moves only when a condition's status flips.

How kstatus (Flux) reads that, in its order: `status.observedGeneration` behind `metadata.generation` is
InProgress (the CRD defaults status to `{observedGeneration: 0}`, so a new agent starts there even with no
operator running); `Stalled=True` is Failed; `Ready=True` is Current and `Ready=False` InProgress. No
`Reconciling` condition is written: every state it would mark already has Ready=False without Stalled, which
kstatus reads as InProgress (its Ready rule), and Progressing carries the detail for `kubectl describe`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NotRequired, TypedDict, cast

from agentry_api.endpoints import endpoints, protocols_column
from agentry_api.v1alpha1 import AgentDeployment, Endpoints

from .checks import INVALID_OUTPUT_SCHEMA, RESOURCE_CONFLICT, SECRET_NOT_FOUND, UNKNOWN_MODEL_PROVIDER, Problem
from .health.failures import INVALID_RUNTIME_CONFIG, POD_FAILURES
from .health.policy import HealthVerdict
from .render.labels import selector_string
from .render.service import service_url
from .rollout import DEADLINE_EXCEEDED, deployment_view
from .timestamps import timestamp

READY, PROGRESSING, DEGRADED, STALLED = "Ready", "Progressing", "Degraded", "Stalled"
#: The conditions this module writes; any other type in the status (another writer's) is kept as it is.
OWN_CONDITIONS = (READY, PROGRESSING, DEGRADED, STALLED)
#: Degraded reasons no retry or restart can fix: a person must act, so Stalled=True and kstatus says Failed
#: (Flux stops waiting at once) instead of InProgress until a timeout. The one place that decides it.
NEEDS_PERSON = frozenset(
    {
        SECRET_NOT_FOUND,
        INVALID_OUTPUT_SCHEMA,
        UNKNOWN_MODEL_PROVIDER,
        RESOURCE_CONFLICT,  # a child's name is taken by an object the agent does not control
        "RestartBudgetExhausted",  # the health monitor restarted pods as often as it may and they stay unwell
        DEADLINE_EXCEEDED,  # the Deployment gave up (image, crash loop, no room); kstatus fails it too
        INVALID_RUNTIME_CONFIG,  # the runtime exits at start on a configuration only a person can fix
    }
)
#: The keys of status.endpoints on the wire.
ENDPOINT_KEYS = tuple(field.alias or name for name, field in Endpoints.model_fields.items())
#: Status fields this module writes; the health monitor writes the others.
OWN_FIELDS = (
    "observedGeneration",
    "replicas",
    "readyReplicas",
    "selector",
    "url",
    "protocols",
    "endpoints",
    "conditions",
)


class ConditionDict(TypedDict):
    """metav1.Condition on the wire."""

    type: str
    status: str
    reason: str
    message: str
    lastTransitionTime: str
    observedGeneration: NotRequired[int]


class StatusPatch(TypedDict):
    """The part of status.* the reconciler owns."""

    observedGeneration: int
    replicas: int
    readyReplicas: int
    selector: str
    url: str
    protocols: str
    endpoints: dict[str, str | None]
    """Every endpoint's key: a protocol not served is None, which a merge patch deletes from the stored status."""
    conditions: list[ConditionDict]


@dataclass(frozen=True, kw_only=True)
class Rollout:
    """Where the Deployment stands: done, under way (with a reason) or stuck."""

    complete: bool
    stuck: bool
    reason: str
    message: str


@dataclass(frozen=True, kw_only=True)
class Transition:
    """A condition that changed status or reason: one Event each."""

    type: str
    status: str
    reason: str
    message: str


def rollout(deployment: Mapping[str, Any] | None) -> Rollout:
    """Read a Deployment's progress from its spec, metadata and status."""
    if deployment is None:
        return Rollout(complete=False, stuck=False, reason="DeploymentNotFound", message="the Deployment is missing")
    view = deployment_view(deployment)
    desired, updated, replicas, available = view.desired, view.updated, view.replicas, view.available
    if view.observed_generation < view.generation:
        return Rollout(complete=False, stuck=False, reason="Reconciling", message="Deployment change not seen yet")
    if view.deadline_exceeded is not None:
        return Rollout(complete=False, stuck=True, reason=DEADLINE_EXCEEDED, message=view.deadline_exceeded)
    if updated < desired or replicas > updated:
        return Rollout(
            complete=False,
            stuck=False,
            reason="RollingOut",
            message=f"{updated} of {desired} pods updated, {replicas} pods in total",
        )
    if replicas > desired:
        return Rollout(complete=False, stuck=False, reason="ScalingDown", message=f"{replicas} pods, {desired} wanted")
    if available < desired:
        return Rollout(
            complete=False, stuck=False, reason="PodsNotReady", message=f"{available} of {desired} pods available"
        )
    return Rollout(complete=True, stuck=False, reason="Ready", message=f"{available} of {desired} pods available")


def compute_status(
    agent: AgentDeployment,
    *,
    generation: int,
    observed_generation: int,
    deployment: Mapping[str, Any] | None,
    problem: Problem | None,
    previous: Sequence[Mapping[str, Any]],
    now: datetime,
    health: HealthVerdict | None = None,
    served: Mapping[str, Any] | None = None,
) -> StatusPatch:
    """The status to write.

    `health` is the health monitor's verdict: when pods stay unwell or the restart budget ran out, Degraded
    turns True with its reason even though the Deployment itself is fine. Stalled follows Degraded when
    its reason is one that needs a person (`NEEDS_PERSON`). A runtime that fails to start (`POD_FAILURES`)
    also gives a not-ready agent its Ready reason and the runtime's own line, which `kubectl get agents`
    and `kubectl describe` show instead of the rollout's count of unavailable pods.

    `observed_generation` is the generation last applied: the agent's own after a successful reconcile,
    the previous status's value when only the Deployment moved. `served` is the previous status: while a problem
    keeps the generation from being applied, its protocols and endpoints are still what the pods serve, so they stay.
    """
    status = (deployment or {}).get("status") or {}
    wanted = _conditions(generation=generation, observed=observed_generation, deployment=deployment, problem=problem)
    if health is not None and health.degraded:
        wanted = [
            (DEGRADED, "True", health.reason, health.message)
            if kind == DEGRADED and status == "False"
            else (kind, status, reason, message)
            for kind, status, reason, message in wanted
        ]
        if health.reason in POD_FAILURES and problem is None and observed_generation >= generation:
            wanted = [_failed_start(condition, health) for condition in wanted]
    wanted += stalled(wanted)
    applied = problem is None and observed_generation >= generation
    protocols, urls = served_protocols(agent, applied=applied, previous=served)
    return {
        "observedGeneration": observed_generation,
        "replicas": int(status.get("replicas", 0)),
        "readyReplicas": int(status.get("readyReplicas", 0)),
        "selector": selector_string(agent),
        "url": service_url(agent),
        "protocols": protocols,
        "endpoints": urls,
        "conditions": merge_conditions(previous, wanted, now=now, observed_generation=observed_generation),
    }


def served_protocols(
    agent: AgentDeployment, *, applied: bool, previous: Mapping[str, Any] | None
) -> tuple[str, dict[str, str | None]]:
    """status.protocols and status.endpoints: from the spec once applied, else the previous status's (if any).

    An agent whose first generation is not applied yet has no previous ones; it gets the spec's, like its url.
    During a rollout the new pods serve the new ones already, so an applied spec is what the status names.
    """
    previous = previous or {}
    if not applied and "protocols" in previous and isinstance(previous.get("endpoints"), Mapping):
        return str(previous["protocols"]), {key: previous["endpoints"].get(key) for key in ENDPOINT_KEYS}
    protocols = agent.spec.protocols
    return protocols_column(protocols), endpoints(service_url(agent), protocols).model_dump(by_alias=True)


def _conditions(
    *, generation: int, observed: int, deployment: Mapping[str, Any] | None, problem: Problem | None
) -> list[tuple[str, str, str, str]]:
    """(type, status, reason, message) for Ready, Progressing and Degraded."""
    if problem is not None:
        return [
            (READY, "False", problem.reason, problem.message),
            (PROGRESSING, "False", problem.reason, problem.message),
            (DEGRADED, "True", problem.reason, problem.message),
        ]
    if observed < generation:
        message = f"generation {generation} not applied yet"
        return [
            (READY, "False", "Reconciling", message),
            (PROGRESSING, "True", "Reconciling", message),
            (DEGRADED, "False", "AsExpected", ""),
        ]
    state = rollout(deployment)
    if state.complete:
        ready_reason = "ScaledToZero" if (deployment or {}).get("spec", {}).get("replicas") == 0 else "Ready"
        return [
            (READY, "True", ready_reason, state.message),
            (PROGRESSING, "False", "Complete", state.message),
            (DEGRADED, "False", "AsExpected", ""),
        ]
    if state.stuck:
        return [
            (READY, "False", state.reason, state.message),
            (PROGRESSING, "False", state.reason, state.message),
            (DEGRADED, "True", state.reason, state.message),
        ]
    return [
        (READY, "False", state.reason, state.message),
        (PROGRESSING, "True", state.reason, state.message),
        (DEGRADED, "False", "AsExpected", ""),
    ]


def _failed_start(condition: tuple[str, str, str, str], health: HealthVerdict) -> tuple[str, str, str, str]:
    """Ready=False of a rollout that cannot finish, told by the runtime's failure."""
    kind, status, _, _ = condition
    if kind == READY and status == "False":
        return (READY, "False", health.reason, health.message)
    return condition


def stalled(wanted: Sequence[tuple[str, str, str, str]]) -> list[tuple[str, str, str, str]]:
    """Stalled=True with Degraded's reason and message when that reason needs a person; else nothing.

    Absent rather than False when all is well: kstatus's conditions are abnormal-true, absence means normal,
    and Flux's own controllers remove it the same way. So it goes away as soon as the problem does.
    """
    return [
        (STALLED, "True", reason, message)
        for kind, status, reason, message in wanted
        if kind == DEGRADED and status == "True" and reason in NEEDS_PERSON
    ]


def never_reconciled(status: Mapping[str, Any] | None) -> bool:
    """Whether no reconcile has written this status yet (it holds only the CRD's defaults, or nothing)."""
    return not (status or {}).get("conditions")


def merge_conditions(
    previous: Sequence[Mapping[str, Any]],
    wanted: Sequence[tuple[str, str, str, str]],
    *,
    now: datetime,
    observed_generation: int,
) -> list[ConditionDict]:
    """New conditions, keeping lastTransitionTime where the status did not flip, and other writers' types."""
    before = {str(c.get("type")): c for c in previous}
    merged: list[ConditionDict] = []
    for kind, status, reason, message in wanted:
        old = before.get(kind)
        unchanged = old is not None and old.get("status") == status and old.get("lastTransitionTime")
        merged.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastTransitionTime": str(old["lastTransitionTime"]) if unchanged and old else timestamp(now),
                "observedGeneration": observed_generation,
            }
        )
    others = [cast(ConditionDict, dict(c)) for c in previous if c.get("type") not in OWN_CONDITIONS]
    return merged + others


def status_changed(current: Mapping[str, Any] | None, new: StatusPatch) -> bool:
    """Whether writing `new` would change anything the reconciler owns (the patch is skipped otherwise)."""
    current = current or {}
    return any(_as_stored(current.get(key)) != _as_stored(new[key]) for key in OWN_FIELDS)  # type: ignore[literal-required]


def _as_stored(value: Any) -> Any:
    """A status value as stored: a merge patch deletes the keys it sets to None, so they compare as absent."""
    return {k: v for k, v in value.items() if v is not None} if isinstance(value, Mapping) else value


def transitions(previous: Sequence[Mapping[str, Any]], new: Sequence[ConditionDict]) -> list[Transition]:
    """The changes worth an Event: Ready flipping, a new problem, Degraded turning True or back to False.

    Progress while not ready (RollingOut, then PodsNotReady) is left to the conditions: at many agents an
    Event per step would be most of the operator's writes. A Degraded change that only repeats the new Ready
    reason is left out too, so one problem is one Event. A runtime's failed start is left out altogether:
    the health monitor posts it, once per distinct line the runtime left.
    """
    before = {c.get("type"): c for c in previous}
    now = {c["type"]: c for c in new}
    changed = []
    ready, degraded, old = now.get(READY), now.get(DEGRADED), before.get(DEGRADED) or {}
    broken = bool(degraded and degraded["status"] == "True")
    if ready and ready["reason"] not in POD_FAILURES and _ready_moved(before.get(READY), ready, degraded=broken):
        changed.append(Transition(type=READY, status=ready["status"], reason=ready["reason"], message=ready["message"]))
    flipped = degraded and degraded["status"] != old.get("status", "False")
    if (
        degraded
        and flipped
        and degraded["reason"] not in POD_FAILURES
        and not (ready and ready["reason"] == degraded["reason"])
    ):
        changed.append(
            Transition(type=DEGRADED, status=degraded["status"], reason=degraded["reason"], message=degraded["message"])
        )
    return changed


def _ready_moved(old: Mapping[str, Any] | None, new: ConditionDict, *, degraded: bool) -> bool:
    if old is None:
        return new["status"] == "True" or degraded
    if old.get("status") != new["status"]:
        return True
    return degraded and old.get("reason") != new["reason"]


def is_degraded(conditions: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the Degraded condition is True (its Events are Warnings)."""
    return any(c.get("type") == DEGRADED and c.get("status") == "True" for c in conditions)
