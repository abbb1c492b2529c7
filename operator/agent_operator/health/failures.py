"""A runtime that failed to start, read from its pod's container status: the one line it left, its exit code.

The runtime writes the line to its termination message file; the kubelet copies it into
`state.terminated.message` and, once the container waits to be restarted, `lastState.terminated.message`.
With FallbackToLogsOnError the kubelet puts the log's tail there when the file is empty (a crash before the
runtime could write it), so a message is cut to its last line. Pure: a pod's status in, a small value out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentry_api.wiring import EXIT_CONFIG

from ..timestamps import epoch

#: A runtime container that keeps failing to start (CrashLoopBackOff) or exited non-zero.
RUNTIME_FAILED = "RuntimeFailed"
#: The same, with the runtime's exit code for a configuration it cannot use: only a person can fix it.
INVALID_RUNTIME_CONFIG = "InvalidRuntimeConfig"
POD_FAILURES = frozenset({RUNTIME_FAILED, INVALID_RUNTIME_CONFIG})
#: Longest line quoted from a termination message, in characters (the runtime writes at most 900 bytes;
#: another image may write the kubelet's 4096).
MAX_LINE = 900
#: The waiting reason of a container the kubelet restarts with back-off after it exited.
CRASH_LOOP = "CrashLoopBackOff"


@dataclass(frozen=True)
class ContainerFailure:
    """Why one container of a pod is not running: its last termination."""

    container: str
    line: str
    exit_code: int
    restarts: int
    finished_at: float = 0.0
    """Epoch seconds of the termination (0 when the kubelet gave none), to prefer the latest failure."""

    @property
    def reason(self) -> str:
        """The condition reason: a bad configuration needs a person, anything else may pass on a restart."""
        return INVALID_RUNTIME_CONFIG if self.exit_code == EXIT_CONFIG else RUNTIME_FAILED


def container_failure(status: Mapping[str, Any]) -> ContainerFailure | None:
    """The failure of the first failing container in a pod's status, or None when none is failing.

    Failing: terminated with a non-zero exit code, or waiting in CrashLoopBackOff after one. A container that
    runs again after a crash is not failing (the dependency it waited for came up).
    """
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        terminated = state.get("terminated")
        if terminated is None and (state.get("waiting") or {}).get("reason") == CRASH_LOOP:
            terminated = (container.get("lastState") or {}).get("terminated")
        if not terminated or int(terminated.get("exitCode") or 0) == 0:
            continue
        finished = terminated.get("finishedAt")
        return ContainerFailure(
            container=str(container.get("name", "")),
            line=message_line(str(terminated.get("message") or ""), fallback=str(terminated.get("reason") or "")),
            exit_code=int(terminated["exitCode"]),
            restarts=int(container.get("restartCount") or 0),
            finished_at=epoch(finished) if finished else 0.0,
        )
    return None


def message_line(message: str, *, fallback: str) -> str:
    """The last non-empty line of a termination message, whitespace collapsed, cut to MAX_LINE.

    Without a message, the kubelet's reason (`Error`, `OOMKilled`) says at least how it ended.
    """
    lines = [" ".join(line.split()) for line in message.splitlines()]
    line = next((line for line in reversed(lines) if line), "") or f"exited: {fallback or 'no termination message'}"
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 3] + "..."
