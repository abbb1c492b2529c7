"""Pod statuses as the kubelet writes them, for the tests of what the operator reads from pods."""

from __future__ import annotations

from typing import Any

#: The line a runtime with a bad field leaves in its termination message.
LINE = "invalid configuration in /etc/agentry/agent.yaml: spec.replicas: Input should be greater than or equal to 0"


def crash_looping(
    *, message: str = LINE, exit_code: int = 2, restarts: int = 3, finished: str = "2026-01-01T00:00:10Z"
) -> dict[str, Any]:
    """A pod status as the kubelet writes it while the runtime waits to be restarted after a failed start."""
    return {
        "phase": "Running",
        "containerStatuses": [
            {
                "name": "runtime",
                "ready": False,
                "restartCount": restarts,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed"}},
                "lastState": {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": "Error",
                        "message": message,
                        "finishedAt": finished,
                    }
                },
            }
        ],
    }
