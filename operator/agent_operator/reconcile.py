"""One reconcile of one agent: read, check, render, apply, prune, write status; and what triggers it again.

Level-based and idempotent: every trigger (the AgentDeployment changed, a child was edited or deleted, the
periodic resync, a retry) runs the same steps against the current state, so a lost or duplicated trigger
costs nothing. Runs of the same agent are serialised by a per-agent lock; different agents run concurrently.
The only memory kept is per agent and small: what was last applied (to tell our own writes from drift), the
last status written, and when to look again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from opentelemetry.trace import NoOpTracer, StatusCode, Tracer
from pydantic import ValidationError

from agentry_api import v1alpha1 as api
from agentry_api.base import error_lines

from .checks import Problem, check_ownership, check_secrets, check_spec
from .config import OperatorConfig
from .events import EventRef, agent_ref
from .health.policy import HealthVerdict
from .kinds import BY_KIND, CHILD_KINDS, Applied, ApplyError, ChildKey, key_of
from .render import Owner, may_write, render_children
from .render.labels import AGENT
from .status import StatusPatch, compute_status, is_degraded, never_reconciled, status_changed, transitions

logger = logging.getLogger(__name__)

INVALID_SPEC = "InvalidSpec"
APPLY_FAILED = "ApplyFailed"
#: Outcome in the metrics of a reconcile that raised (API error, timeout) instead of returning a problem.
RECONCILE_ERROR = "Error"
#: Kinds rendered only under some specs; when an agent stops rendering one, its object is deleted.
OPTIONAL_KINDS = frozenset(child.key for child in CHILD_KINDS if child.optional)
#: Kinds with a status subresource: their resourceVersion moves with status, their generation only with spec.
GENERATION_KINDS = frozenset(child.kind for child in CHILD_KINDS if child.status_generation)


class ReconcilerApi(Protocol):
    """What one reconcile asks of the API server; `apply.KubeApi` is the real one, tests/operator/fakeapi.py a fake."""

    async def agent(self, *, namespace: str, name: str) -> dict[str, Any] | None:
        """The AgentDeployment as stored, or None when it is gone."""

    async def deployment(self, *, namespace: str, name: str) -> dict[str, Any] | None:
        """The Deployment of that name as stored (whoever owns it), or None."""

    async def secret_keys(self, *, namespace: str, names: Iterable[str]) -> dict[str, set[str] | None]:
        """The keys each named Secret holds; None for a Secret that does not exist."""

    async def stored_child(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        """The object stored under a rendered child's kind and name, or None."""

    async def apply_child(self, obj: dict[str, Any], *, owner: Owner) -> Applied:
        """Server-side apply one child with the owner reference added; ApplyError when refused."""

    async def delete_stale(
        self, *, kinds: Iterable[tuple[str, str]], namespace: str, owner: Owner, keep: set[ChildKey]
    ) -> list[ChildKey]:
        """Delete the agent's children of these kinds not in `keep` (never another's object); return them."""

    async def patch_status(self, *, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Merge-patch these status fields of the AgentDeployment."""

    async def post_event(self, ref: EventRef, *, type: str, reason: str, message: str) -> None:
        """Post an Event; never raises."""


@dataclass
class AgentState:
    """What the operator remembers about one agent between triggers."""

    agent: api.AgentDeployment
    uid: str
    generation: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    applied: dict[ChildKey, Applied] = field(default_factory=dict)
    optional_present: frozenset[tuple[str, str]] = OPTIONAL_KINDS
    """Optional kinds that may exist; all of them until a prune has run in this process."""
    problem: Problem | None = None
    status: StatusPatch | None = None
    attempt: int = 0
    due: float = 0.0
    """Monotonic time of the next resync or retry."""

    def owner(self) -> Owner:
        """The owner reference every child of this agent carries."""
        return Owner(name=self.agent.metadata.name, uid=self.uid)

    def ref(self) -> EventRef:
        """Object reference for Events."""
        return agent_ref(name=self.agent.metadata.name, namespace=self.agent.metadata.namespace, uid=self.uid)


def parse_agent(body: Mapping[str, Any]) -> api.AgentDeployment:
    """The AgentDeployment model of a stored object (status and unknown metadata left out)."""
    meta = body.get("metadata") or {}
    return api.AgentDeployment.model_validate(
        {"metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")}, "spec": body.get("spec")}
    )


class Reconciler:
    """Reconciles agents; shared by every handler of one operator process, and the one owner of retries.

    A reconcile that ends in a problem, or raises, is tried again by the resync loop after the backoff of
    `OperatorConfig.retry_delay`; the kopf handlers only trigger reconciles and never retry by themselves.
    """

    def __init__(
        self,
        *,
        kube: ReconcilerApi,
        config: OperatorConfig,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        outcomes: Callable[[str | None], None] = lambda reason: None,
        tracer: Tracer | None = None,
    ) -> None:
        self._kube, self._config, self._outcomes = kube, config, outcomes
        self._tracer: Tracer = tracer or NoOpTracer()
        self._now, self._monotonic = now, monotonic
        self._agents: dict[tuple[str, str], AgentState] = {}
        self._health: dict[tuple[str, str], HealthVerdict] = {}

    # --- triggers ------------------------------------------------------------------------------

    async def reconcile(self, body: Mapping[str, Any]) -> Problem | None:
        """Bring the agent's children and status in line with `body`; return what stops it, if anything.

        Either way the next attempt is scheduled here: a problem or an error after the backoff, else the resync.
        An error (API refusal, timeout) is raised on after scheduling, for the caller to log.
        """
        meta = body.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            return None  # garbage collection takes the children with it
        try:
            agent = parse_agent(body)
        except ValidationError as exc:
            logger.error("%s/%s: invalid spec: %s", meta.get("namespace"), meta.get("name"), exc)
            self._outcomes(INVALID_SPEC)
            return Problem(reason=INVALID_SPEC, message="; ".join(error_lines(exc)))
        state = self._state(agent, uid=str(meta.get("uid", "")))
        attributes: dict[str, str | int] = {
            "agentry.agent": f"{agent.metadata.namespace}/{agent.metadata.name}",
            "k8s.namespace.name": agent.metadata.namespace,
            "agentry.generation": int(meta.get("generation") or 0),
        }
        # One span per reconcile (a root: nothing upstream traces a watch event), so a slow rollout can be followed.
        with self._tracer.start_as_current_span("reconcile", attributes=attributes) as span:
            async with state.lock:
                state.agent = agent
                try:
                    problem = await self._reconcile_locked(state, body)
                except Exception as exc:
                    self._schedule(state, failed=True)
                    self._outcomes(RECONCILE_ERROR)
                    span.set_attribute("agentry.outcome", RECONCILE_ERROR)
                    span.set_status(StatusCode.ERROR, type(exc).__name__)
                    raise
            span.set_attribute("agentry.children", sorted(f"{key[1]}/{key[2]}" for key in state.applied))
            span.set_attribute("agentry.outcome", problem.reason if problem else "Reconciled")
            if problem is not None:
                span.set_status(StatusCode.ERROR, problem.reason)
        self._schedule(state, failed=problem is not None)
        self._outcomes(problem.reason if problem else None)  # metrics: failed reconciles by reason
        return problem

    async def reconcile_named(self, *, namespace: str, name: str) -> Problem | None:
        """Reconcile the agent as stored now; nothing when it is gone."""
        body = await self._kube.agent(namespace=namespace, name=name)
        return None if body is None else await self.reconcile(body)

    async def on_child_event(self, *, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A child changed: restore it when that was not the operator's own write, else follow its status.

        Initial listings (event_type None) are skipped: the resume handler reconciles every agent anyway.
        """
        meta = body.get("metadata") or {}
        namespace, owner = meta.get("namespace"), (meta.get("labels") or {}).get(AGENT)
        if event_type is None or not namespace or not owner:
            return
        state = self._agents.get((namespace, owner))
        if state is None:
            await self.reconcile_named(namespace=namespace, name=owner)
            return
        async with state.lock:  # after our own apply has finished and been recorded
            drifted = event_type == "DELETED" or is_drift(state, body)
            if not drifted and body.get("kind") == "Deployment" and meta.get("name") == owner:
                await self._publish(state, deployment=body, observed=state.generation, previous=state.status)
        if drifted:
            logger.info(
                "%s/%s: %s %s changed by someone else (%s), restoring",
                namespace,
                owner,
                body.get("kind"),
                meta.get("name"),
                event_type,
            )
            await self.reconcile_named(namespace=namespace, name=owner)

    def forget(self, *, namespace: str, name: str) -> None:
        """Drop the memory of a deleted agent."""
        self._agents.pop((namespace, name), None)
        self._health.pop((namespace, name), None)

    def statuses(self) -> list[StatusPatch]:
        """The status last computed for each agent (for the metrics of agents by condition)."""
        return [state.status for state in self._agents.values() if state.status is not None]

    def set_health(self, namespace: str, name: str, verdict: HealthVerdict) -> None:
        """Take the health monitor's new verdict; the status follows on the next resync tick."""
        self._health[(namespace, name)] = verdict
        state = self._agents.get((namespace, name))
        if state is not None:
            state.due = min(state.due, self._monotonic())

    async def resync_forever(self, *, tick: float = 1.0, concurrency: int = 8) -> None:
        """Reconcile every known agent whose resync or retry is due; runs until cancelled."""
        limit = asyncio.Semaphore(concurrency)

        async def one(state: AgentState) -> None:
            async with limit:
                meta, claimed = state.agent.metadata, state.due
                try:
                    await self.reconcile_named(namespace=meta.namespace, name=meta.name)
                except Exception:  # a failed resync must not end the loop; the retry is scheduled
                    logger.exception("%s/%s: resync failed", meta.namespace, meta.name)
                    if state.due == claimed:  # failed before `reconcile` could schedule it (reading the agent)
                        self._schedule(state, failed=True)

        while True:
            await asyncio.sleep(tick)
            now = self._monotonic()
            due = [s for s in self._agents.values() if s.due <= now and not s.lock.locked()]
            for state in due:
                state.due = now + self._config.resync_seconds  # claimed; `reconcile` reschedules
            await asyncio.gather(*(one(state) for state in due))

    # --- steps ---------------------------------------------------------------------------------

    def _state(self, agent: api.AgentDeployment, *, uid: str) -> AgentState:
        key = (agent.metadata.namespace, agent.metadata.name)
        state = self._agents.get(key)
        if state is None or state.uid != uid:  # a new object under an old name starts afresh
            state = self._agents[key] = AgentState(agent=agent, uid=uid)
        return state

    def _schedule(self, state: AgentState, *, failed: bool) -> None:
        if failed:
            state.due = self._monotonic() + self._config.retry_delay(state.attempt)
            state.attempt += 1
            return
        state.attempt = 0
        state.due = self._monotonic() + self._config.resync_seconds

    async def _reconcile_locked(self, state: AgentState, body: Mapping[str, Any]) -> Problem | None:
        agent = state.agent
        generation = int((body.get("metadata") or {}).get("generation") or 0)
        problem = check_spec(agent) or await self._check_secrets(agent)
        deployment: Mapping[str, Any] | None = None
        children: list[dict[str, Any]] = []
        if problem is None:
            children = render_children(agent, self._config)
            problem = await self._check_ownership(state, children)
        if problem is None:
            try:
                with self._tracer.start_as_current_span("apply", attributes={"agentry.children.count": len(children)}):
                    deployment = await self._apply(state, children)
            except ApplyError as exc:
                problem = Problem(reason=APPLY_FAILED, message=str(exc))
        if deployment is None:
            meta = agent.metadata
            deployment = await self._kube.deployment(namespace=meta.namespace, name=meta.name)
            if deployment is not None and not may_write(deployment, owner=state.owner()):
                deployment = None  # someone else's Deployment under the agent's name says nothing of the agent
        state.generation, state.problem = generation, problem
        previous = state.status if state.status is not None else (body.get("status") or {})
        await self._publish(state, deployment=deployment, observed=generation, previous=previous)
        # A never-reconciled agent (no conditions yet) has nothing stale: its first reconcile skips the listings.
        if problem is None and not never_reconciled(body.get("status")):
            await self._prune(state, children)
        return problem

    async def _check_secrets(self, agent: api.AgentDeployment) -> Problem | None:
        names = [ref.name for _, ref in agent.spec.secret_refs()]
        if not names:
            return None
        keys = await self._kube.secret_keys(namespace=agent.metadata.namespace, names=names)
        return check_secrets(agent, secrets=keys)

    async def _check_ownership(self, state: AgentState, children: list[dict[str, Any]]) -> Problem | None:
        """Read every child as stored (concurrently): one held by someone else stops the whole apply."""
        stored = await asyncio.gather(*(self._kube.stored_child(child) for child in children))
        pairs = [(child["kind"], found) for child, found in zip(children, stored, strict=True)]
        return check_ownership(pairs, owner=state.owner())

    async def _apply(self, state: AgentState, children: list[dict[str, Any]]) -> Mapping[str, Any] | None:
        """Apply every rendered child, what the pods mount first (concurrently); return the Deployment."""
        owner = state.owner()
        first = [c for c in children if BY_KIND[c["kind"]].applied_first]
        rest = [c for c in children if c not in first]
        applied = list(await asyncio.gather(*(self._kube.apply_child(c, owner=owner) for c in first)))
        applied += await asyncio.gather(*(self._kube.apply_child(c, owner=owner) for c in rest))
        state.applied = {item.key: item for item in applied}
        return next((item.body for item in applied if item.key[1] == "Deployment"), None)

    async def _prune(self, state: AgentState, children: list[dict[str, Any]]) -> None:
        """Delete optional children the agent no longer renders (listed only for kinds that may exist)."""
        agent = state.agent
        rendered = {(c["apiVersion"], c["kind"]) for c in children}
        stale_kinds = state.optional_present - rendered
        if stale_kinds:
            deleted = await self._kube.delete_stale(
                kinds=sorted(stale_kinds),
                namespace=agent.metadata.namespace,
                owner=state.owner(),
                keep={key_of(c) for c in children},
            )
            for key in deleted:
                await self._kube.post_event(
                    state.ref(), type="Normal", reason="Deleted", message=f"deleted {key[1]} {key[2]}"
                )
        state.optional_present = frozenset(rendered & OPTIONAL_KINDS)

    async def _publish(
        self,
        state: AgentState,
        *,
        deployment: Mapping[str, Any] | None,
        observed: int,
        previous: Mapping[str, Any] | None,
    ) -> None:
        """Write status when it changed, and post an Event for each change of state."""
        before = list((previous or {}).get("conditions") or [])
        meta = state.agent.metadata
        new = compute_status(
            state.agent,
            generation=state.generation,
            observed_generation=observed,
            deployment=deployment,
            problem=state.problem,
            previous=before,
            now=self._now(),
            health=self._health.get((meta.namespace, meta.name)),
            served=previous,
        )
        if not status_changed(previous, new):
            state.status = new
            return
        await self._kube.patch_status(namespace=meta.namespace, name=meta.name, status=new)
        state.status = new
        kind = "Warning" if is_degraded(new["conditions"]) else "Normal"
        for change in transitions(before, new["conditions"]):
            message = f"{change.type}={change.status}: {change.message}" if change.message else change.type
            await self._kube.post_event(state.ref(), type=kind, reason=change.reason, message=message)


def is_drift(state: AgentState, body: Mapping[str, Any]) -> bool:
    """Whether a child event shows someone else's write (ours are recorded when applied)."""
    kind = body.get("kind", "")
    meta = body.get("metadata") or {}
    applied = state.applied.get((body.get("apiVersion", ""), kind, meta.get("name", "")))
    if applied is None:
        return True
    if kind in GENERATION_KINDS:
        return int(meta.get("generation") or 0) != applied.generation
    return str(meta.get("resourceVersion", "")) != applied.resource_version
