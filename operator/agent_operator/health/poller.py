"""Poll pods' /health concurrently over one shared HTTP session, with a global cap and timeouts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp

from agentry_api.v1alpha1 import HealthSpec

from .policy import Poll, classify

#: Bodies larger than this are not health answers; refusing them bounds the operator's memory.
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class PodTarget:
    """A pod to poll: its name and where its runtime listens."""

    name: str
    ip: str
    port: int


class Poller:
    """Polls many pods at once; the semaphore is shared by every agent, so one big agent cannot starve others."""

    def __init__(self, *, session: aiohttp.ClientSession, max_concurrent: int, clock: Callable[[], float]) -> None:
        self._session = session
        self._slots = asyncio.Semaphore(max_concurrent)
        self._clock = clock

    async def poll_all(self, pods: Sequence[PodTarget], *, health: HealthSpec) -> dict[str, Poll]:
        """One poll of every pod, concurrently; a pod that fails to answer yields an unreachable Poll."""
        polls = await asyncio.gather(*(self.poll(pod, health=health) for pod in pods))
        return {pod.name: poll for pod, poll in zip(pods, polls, strict=True)}

    async def poll(self, pod: PodTarget, *, health: HealthSpec) -> Poll:
        """GET http://<podIP>:<port>/health within spec.health.timeoutSeconds."""
        host = f"[{pod.ip}]" if ":" in pod.ip else pod.ip
        url = f"http://{host}:{pod.port}/health"
        async with self._slots:
            try:
                async with asyncio.timeout(health.timeout_seconds):
                    async with self._session.get(url) as response:
                        raw = await response.content.read(MAX_BODY_BYTES + 1)
            except TimeoutError:
                return classify(
                    None, at=self._clock(), health=health, error=f"timed out after {health.timeout_seconds}s"
                )
            except aiohttp.ClientError as exc:
                return classify(None, at=self._clock(), health=health, error=f"{type(exc).__name__}: {exc}")
        body, error = _parse(raw, response.status)
        return classify(body, at=self._clock(), health=health, error=error)


def _parse(raw: bytes, status: int) -> tuple[dict[str, object] | None, str]:
    """The JSON object, or None with why it is not a health answer; `classify` reads it with the runtime's model.

    A 503 with a JSON body is still an answer (the runtime says unhealthy); a body that is not a JSON
    object means something else is listening there, which counts as unreachable. A JSON object that is
    not the runtime's report is an answer, and `classify` calls it unhealthy, naming the field.
    """
    if len(raw) > MAX_BODY_BYTES:
        return None, f"health answer larger than {MAX_BODY_BYTES} bytes"
    try:
        body = json.loads(raw)
    except ValueError:
        return None, f"HTTP {status} without a JSON health answer"
    if not isinstance(body, dict):
        return None, f"HTTP {status} with a health answer that is not an object"
    return body, ""
