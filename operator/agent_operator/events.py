"""The Event reference and the Event sink: the one shape in which the reconciler and the health daemons post Events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from agentry_api import v1alpha1 as api

#: Events longer than this are cut: the API server refuses a message over 1 KiB in events.k8s.io/v1.
MAX_MESSAGE = 1024
#: reportingComponent and source.component of every Event the operator posts.
COMPONENT = "agentry-operator"


@dataclass(frozen=True, kw_only=True)
class EventRef:
    """The object an Event is about (its involvedObject)."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str


def agent_ref(*, name: str, namespace: str, uid: str) -> EventRef:
    """The reference of an AgentDeployment, which every operator Event is about."""
    return EventRef(api_version=api.API_VERSION, kind=api.KIND, name=name, namespace=namespace, uid=uid)


class EventSink(Protocol):
    """Posts a Kubernetes Event; best effort: never raises, a failure is logged and the Event dropped."""

    async def __call__(self, ref: EventRef, *, type: str, reason: str, message: str) -> None:
        """Post one Event (`type` Normal or Warning); a long message is truncated to `MAX_MESSAGE`."""
