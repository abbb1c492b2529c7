"""The one module that talks to the Kubernetes API about an agent: its children, Secrets, status and Events.

Built on lightkube's async client (kubeconfig, in-cluster credentials, connection pooling), kept behind this
module: the rest of the operator passes plain dicts in and gets plain dicts back. Children are written by
server-side apply with one field manager and force, so the operator owns exactly the fields it renders and a
hand edit of one of them is overwritten on the next reconcile, while fields others own (an HPA's replicas,
annotations added by other tools) are left alone. Force is safe only on objects the agent holds: the
reconciler reads every child first (`stored_child`) and applies nothing while one name is taken by someone
else's object; deletions (pruning, the recreate below) check the same rule on the object they read.
One window remains: an object created by someone else between that read and the apply, milliseconds later.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx2
from lightkube import ApiError, AsyncClient
from lightkube.core.resource import NamespacedResource
from lightkube.core.resource_registry import resource_registry
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.core_v1 import EventSource, ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Event, Pod, Secret
from lightkube.types import PatchType

from agentry_api import v1alpha1 as api

from .config import FIELD_MANAGER, OperatorConfig
from .events import COMPONENT, MAX_MESSAGE, EventRef
from .kinds import CHILD_KINDS, Applied, ApplyError, ChildKey, ChildKind, key_of
from .render.labels import AGENT, MANAGED_BY, MANAGED_BY_VALUE
from .render.ownership import Owner, may_write, with_owner

AgentResource = create_namespaced_resource(api.GROUP, api.VERSION, api.KIND, api.PLURAL)
logger = logging.getLogger(__name__)


def _resource(child: ChildKind) -> type[NamespacedResource]:
    """Lightkube's class for a built-in kind, found by apiVersion and kind as the table names them."""
    found = resource_registry.load(child.api_version, child.kind)
    if found is None or not issubclass(found, NamespacedResource):
        raise LookupError(f"lightkube has no namespaced resource {child.api_version} {child.kind}")
    return found


#: (apiVersion, kind) of every child kind -> the lightkube class that knows its URL.
RESOURCES: dict[tuple[str, str], type[NamespacedResource]] = {child.key: _resource(child) for child in CHILD_KINDS}

#: Kinds that may be deleted and created again when a hand edit makes apply impossible (no pods inside).
RECREATABLE = frozenset(child.kind for child in CHILD_KINDS if child.recreatable)


class KubeApi:
    """An API client shared by every handler (one connection pool for the whole operator)."""

    def __init__(self, *, config: OperatorConfig) -> None:
        timeout = httpx2.Timeout(config.request_timeout_seconds)
        self._client = AsyncClient(timeout=timeout, field_manager=FIELD_MANAGER)

    async def close(self) -> None:
        """Close the connection pool (at operator shutdown)."""
        await self._client.close()

    async def apply_child(self, obj: dict[str, Any], *, owner: Owner) -> Applied:
        """Server-side apply one child with the owner reference added; ApplyError when refused.

        When the API server refuses the merged object (422) because a hand edit left entries the operator
        cannot remove by apply (another manager's port in a Service, say), a child that holds no running
        workload is deleted and applied afresh. A Deployment is never recreated: that would stop its pods.
        """
        resource = RESOURCES[(obj["apiVersion"], obj["kind"])]
        try:
            return await self._apply_once(resource, with_owner(obj, owner=owner))
        except ApiError as exc:
            if (
                exc.status.code != 422
                or obj["kind"] not in RECREATABLE
                or not await self._delete_owned(resource, obj, owner=owner)
            ):
                raise ApplyError(_describe(obj, exc)) from exc
        try:
            return await self._apply_once(resource, with_owner(obj, owner=owner))
        except ApiError as exc:
            raise ApplyError(_describe(obj, exc)) from exc

    async def _apply_once(self, resource: type[NamespacedResource], obj: dict[str, Any]) -> Applied:
        meta = obj["metadata"]
        stored = await self._client.patch(
            resource,
            meta["name"],
            obj,
            namespace=meta["namespace"],
            patch_type=PatchType.APPLY,
            field_manager=FIELD_MANAGER,
            force=True,
        )
        body = _as_dict(stored)
        return Applied(
            key=key_of(obj),
            resource_version=str(body["metadata"].get("resourceVersion", "")),
            generation=int(body["metadata"].get("generation") or 0),
            body=body,
        )

    async def _delete_owned(self, resource: type[NamespacedResource], obj: dict[str, Any], *, owner: Owner) -> bool:
        meta = obj["metadata"]
        existing = await self._get(resource, namespace=meta["namespace"], name=meta["name"])
        if existing is None or not may_write(existing, owner=owner):
            return False
        await self._delete(resource, name=meta["name"], namespace=meta["namespace"])
        return True

    async def stored_child(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        """The object stored under a rendered child's kind and name, or None when there is none."""
        resource = RESOURCES[(obj["apiVersion"], obj["kind"])]
        return await self._get(resource, namespace=obj["metadata"]["namespace"], name=obj["metadata"]["name"])

    async def delete_stale(
        self, *, kinds: Iterable[tuple[str, str]], namespace: str, owner: Owner, keep: set[ChildKey]
    ) -> list[ChildKey]:
        """Delete children of these kinds that the agent no longer renders; return what was deleted.

        Found by the operator's labels and deleted only when this agent may write them (its own, or orphans of
        an earlier agent of its name), so an object someone else made with the same labels is never touched.
        """
        labels: dict[str, Any] = {AGENT: owner.name, MANAGED_BY: MANAGED_BY_VALUE}
        deleted = []
        for api_version, kind in kinds:
            resource = RESOURCES[(api_version, kind)]
            async for found in self._client.list(resource, namespace=namespace, labels=labels):
                body = _as_dict(found)
                key = key_of({**body, "apiVersion": api_version, "kind": kind})
                if key in keep or not may_write(body, owner=owner):
                    continue
                await self._delete(resource, name=key[2], namespace=namespace)
                deleted.append(key)
        return deleted

    async def _delete(self, resource: type[NamespacedResource], *, name: str, namespace: str) -> None:
        try:
            await self._client.delete(resource, name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code != 404:
                raise

    async def secret_keys(self, *, namespace: str, names: Iterable[str]) -> dict[str, set[str] | None]:
        """The keys each named Secret holds (values are read by the API but never kept); None when absent."""
        found: dict[str, set[str] | None] = {}
        for name in sorted(set(names)):
            try:
                secret = _as_dict(await self._client.get(Secret, name, namespace=namespace))
            except ApiError as exc:
                if exc.status.code != 404:
                    raise
                found[name] = None
                continue
            found[name] = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
        return found

    async def agent(self, *, namespace: str, name: str) -> dict[str, Any] | None:
        """The AgentDeployment as stored, or None when it is gone."""
        return await self._get(AgentResource, namespace=namespace, name=name)

    async def deployment(self, *, namespace: str, name: str) -> dict[str, Any] | None:
        """The agent's Deployment as stored, or None when it is gone."""
        return await self._get(Deployment, namespace=namespace, name=name)

    async def _get(self, resource: type[NamespacedResource], *, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found = await self._client.get(resource, name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise
        return _as_dict(found)

    async def patch_status(self, *, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Merge-patch these fields into the agent's status; fields not named stay as they are.

        The reconciler and the health monitor each write their own fields this way, so neither erases the other's.
        """
        await self._client.patch(
            AgentResource.Status, name, {"status": dict(status)}, namespace=namespace, patch_type=PatchType.MERGE
        )

    async def post_event(self, ref: EventRef, *, type: str, reason: str, message: str) -> None:
        """Create a core/v1 Event about `ref`; best effort: a refusal or timeout is logged and the Event dropped."""
        now = datetime.now(UTC)
        event = Event(
            metadata=ObjectMeta(generateName=f"{ref.name}.", namespace=ref.namespace),
            involvedObject=ObjectReference(
                apiVersion=ref.api_version, kind=ref.kind, name=ref.name, namespace=ref.namespace, uid=ref.uid
            ),
            type=type,
            reason=reason,
            message=message[:MAX_MESSAGE],
            source=EventSource(component=COMPONENT),
            reportingComponent=COMPONENT,
            firstTimestamp=now,
            lastTimestamp=now,
            count=1,
        )
        try:
            await self._client.create(event)
        except Exception as exc:  # an Event is never worth failing a reconcile or a health round for
            logger.warning("%s/%s: %s Event %s dropped: %s", ref.namespace, ref.name, type, reason, exc)

    # --- the health monitor's calls -----------------------------------------------------------

    async def delete_pod(self, *, namespace: str, name: str) -> None:
        """Delete a pod so that its ReplicaSet replaces it (gone already is fine)."""
        await self._delete(Pod, name=name, namespace=namespace)

    async def scale_agent(self, *, namespace: str, name: str, replicas: int) -> None:
        """Set spec.replicas through the AgentDeployment's scale subresource, as an autoscaler does."""
        await self._client.patch(
            AgentResource.Scale,
            name,
            {"spec": {"replicas": replicas}},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )


def _as_dict(obj: Any) -> dict[str, Any]:
    """A lightkube object (typed or generic) as the plain JSON dict the API server sent."""
    body: dict[str, Any] = obj.to_dict()
    return body


def _describe(obj: dict[str, Any], exc: ApiError) -> str:
    meta = obj["metadata"]
    return f"{obj['kind']} {meta['namespace']}/{meta['name']}: {exc.status.message}"
