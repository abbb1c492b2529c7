"""kopf glue: which events start a reconcile. No logic of its own; the reconciler owns retries and Events.

No finalizer is used: every child carries an owner reference, so Kubernetes' garbage collector deletes them with
the AgentDeployment, and deleting an agent works even while the operator is down. (kopf adds a finalizer only
for deletion handlers, daemons and timers; there are none here. The periodic resync is one operator-wide task,
not a per-object timer, for that reason.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any, cast

import aiohttp
import kopf
from pydantic import ValidationError

from agentry_api import v1alpha1 as api

from .apply import KubeApi
from .config import OperatorConfig
from .health.metrics import OperatorMetrics, serve_metrics
from .health.poller import Poller
from .health.supervisor import HealthSupervisor
from .kinds import CHILD_KINDS
from .reconcile import Reconciler, parse_agent
from .render.labels import MANAGED_BY, MANAGED_BY_VALUE
from .tracing import SCOPE, tracer_provider

#: (group, version, plural) of every child kind the operator watches for drift, with its own label selector.
CHILD_RESOURCES: tuple[tuple[str, str, str], ...] = tuple((c.group, c.version, c.plural) for c in CHILD_KINDS)
OWNED = {MANAGED_BY: MANAGED_BY_VALUE}
logger = logging.getLogger(__name__)


def _config(memo: Any) -> OperatorConfig:
    return cast(OperatorConfig, memo.config)


def _reconciler(memo: Any) -> Reconciler:
    return cast(Reconciler, memo.reconciler)


def _health(memo: Any) -> HealthSupervisor:
    return cast(HealthSupervisor, memo.health)


@kopf.on.startup()
async def start(memo: Any, **_: Any) -> None:
    """One API client, one reconciler, one health supervisor for the process; the resync loop; metrics."""
    config = _config(memo)
    memo.kube = KubeApi(config=config)
    memo.metrics = OperatorMetrics()
    memo.tracer_provider = tracer_provider(os.environ)
    tracer = None if memo.tracer_provider is None else memo.tracer_provider.get_tracer(SCOPE)
    memo.reconciler = Reconciler(kube=memo.kube, config=config, outcomes=memo.metrics.observe_reconcile, tracer=tracer)
    memo.metrics.watch_agents(memo.reconciler.statuses)
    memo.resync = asyncio.create_task(memo.reconciler.resync_forever(), name="agentry-resync")
    memo.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=config.health_poll_concurrency))
    poller = Poller(session=memo.http, max_concurrent=config.health_poll_concurrency, clock=time.time)
    memo.health = HealthSupervisor(
        api=memo.kube,
        poller=poller,
        events=memo.kube.post_event,
        verdicts=memo.reconciler.set_health,
        metrics=memo.metrics,
    )
    memo.metrics_server = await serve_metrics(
        memo.metrics, endpoint=config.metrics_endpoint, sock=memo.get("metrics_socket")
    )


@kopf.on.cleanup()
async def stop(memo: Any, **_: Any) -> None:
    """Stop the health daemons and the resync loop, close the connection pools."""
    await _health(memo).close()
    memo.resync.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await memo.resync
    if memo.metrics_server is not None:
        await memo.metrics_server.cleanup()
    await memo.http.close()
    await memo.kube.close()
    if memo.tracer_provider is not None:  # the last spans out, bounded, off the event loop
        await asyncio.to_thread(memo.tracer_provider.shutdown)


@kopf.on.resume(api.GROUP, api.VERSION, api.PLURAL, id="reconcile")
@kopf.on.create(api.GROUP, api.VERSION, api.PLURAL, id="reconcile")
@kopf.on.update(api.GROUP, api.VERSION, api.PLURAL, id="reconcile")
async def reconcile(body: kopf.Body, name: str, namespace: str | None, memo: Any, **_: Any) -> None:
    """Reconcile once; a problem or an error is retried by the reconciler itself, with a growing delay."""
    with contextlib.suppress(ValidationError):  # an invalid spec gets its condition from the reconciler
        _health(memo).ensure(body, parse_agent(body))
    try:
        with memo.metrics.reconcile_seconds.time():
            problem = await _reconciler(memo).reconcile(dict(body))
    except Exception as exc:  # API errors, timeouts: the reconciler has scheduled the retry
        logger.error("%s/%s: reconcile failed, retrying: %s", namespace, name, exc)
        return
    if problem is not None:
        logger.warning("%s/%s: %s, retrying: %s", namespace, name, problem.reason, problem.message)


def _deleted(type: str, **_: Any) -> bool:
    return type == "DELETED"


@kopf.on.event(api.GROUP, api.VERSION, api.PLURAL, id="forget", when=_deleted)
def forget(name: str, namespace: str | None, memo: Any, **_: Any) -> None:
    """Drop the memory of a deleted agent (its children go with garbage collection)."""
    if namespace:
        _reconciler(memo).forget(namespace=namespace, name=name)
        _health(memo).forget(namespace, name)


async def child_event(type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    """A child changed or vanished: restore it when someone else did it; follow the Deployment's readiness."""
    await _reconciler(memo).on_child_event(event_type=type, body=dict(body))


for _group, _version, _plural in CHILD_RESOURCES:
    _groupversion = f"{_group}/{_version}" if _group else _version
    kopf.on.event(_groupversion, _plural, id=f"child-{_plural}", labels=OWNED)(child_event)


@kopf.on.event("v1", "pods", id="pods", labels=OWNED)
def pod_event(type: str | None, body: kopf.Body, memo: Any, **_: Any) -> None:
    """Keep the health monitor's pod index current (a small entry per pod, found by label server-side)."""
    _health(memo).on_pod_event(event_type=type, body=body)


def configure_settings(settings: kopf.OperatorSettings, *, config: OperatorConfig) -> None:
    """Settings for many agents: server-side selectors, bounded timeouts, few Events, annotations only."""
    settings.posting.level = getattr(logging, config.event_level.upper())
    settings.posting.reporting_component = "agentry-operator"
    settings.networking.request_timeout = config.request_timeout_seconds
    settings.networking.connect_timeout = min(10.0, config.request_timeout_seconds)
    settings.watching.server_timeout = config.watch_timeout_seconds
    settings.watching.client_timeout = config.watch_timeout_seconds + 60
    settings.watching.connect_timeout = min(10.0, config.request_timeout_seconds)
    selector = f"{MANAGED_BY}={MANAGED_BY_VALUE}"
    for group, _, plural in (*CHILD_RESOURCES, ("", "v1", "pods")):
        settings.watching.label_selectors[(group or "v1", plural)] = selector
    # Progress and the last handled spec live in annotations: the CRD's structural schema prunes status.kopf.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kopf.agentry.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="kopf.agentry.dev", key="last-handled-configuration"
    )
    settings.persistence.finalizer = "agentry.dev/kopf-finalizer"
