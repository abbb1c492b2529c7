"""Process-level settings that are not part of the AgentDeployment spec (limits of the HTTP layer)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuntimeSettings:
    """Knobs of the server itself; defaults suit a pod, tests shrink them."""

    max_body_bytes: int = 1024 * 1024
    """Largest request body read; a prompt of a megabyte is already far beyond any model's context."""
    max_batch_items: int = 100
    """Items allowed in one batch, so one request cannot hold the pod for minutes."""
    latency_window: int = 2048
    """Recent requests kept for percentiles and rates; bounded so memory never grows with traffic."""
    rate_window_seconds: float = 300.0
    """Age beyond which a request no longer counts for /health's success and error rates."""
    dependency_check_timeout: float = 2.0
    """Time one dependency check may take in /health before it is reported down."""
    shutdown_grace_seconds: float | None = None
    """Time in-flight requests get to finish after SIGTERM; None means the request timeout plus 5 s."""
    heartbeat_interval: float = 0.5
    """How often the liveness heartbeat ticks; a gap far beyond it means the event loop was blocked."""
    max_loop_lag_seconds: float = 10.0
    """Heartbeat gap after which /healthz reports the event loop as unresponsive."""
