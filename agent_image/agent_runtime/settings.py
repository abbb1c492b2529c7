"""Process-level settings that are not part of the AgentDeployment spec (limits of the HTTP layer)."""

from __future__ import annotations

from dataclasses import dataclass

#: Longest prompt accepted whatever the body limit, in characters (code points, as JSON Schema counts).
MAX_PROMPT_CHARS = 200_000
#: Most bytes one character can take in a JSON string: an astral code point escaped as a surrogate pair
#: (`\ud83d\ude00`). Dividing the body limit by it gives a prompt length that fits whatever the
#: client's JSON encoder does, so a prompt the OpenAPI document allows is never refused with 413.
MAX_JSON_BYTES_PER_CHAR = 12
#: Room for the rest of a one-prompt body (`{"prompt": ""}` and some whitespace).
RUN_BODY_OVERHEAD_BYTES = 64


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
    stream_keepalive_seconds: float = 15.0
    """Quiet seconds after which an event stream sends a comment line, so a proxy does not cut it as idle."""
    conversation_sweep_interval: float = 300.0
    """Seconds between sweeps that delete expired conversations (each replica sweeps; a sweep is one DELETE)."""
    max_loop_lag_seconds: float = 10.0
    """Heartbeat gap after which /healthz reports the event loop as unresponsive."""
    conversation_count_interval: float = 10.0
    """How often the active conversations are counted for /health and /metrics: as often as the operator polls by
    default, one indexed query per pod, never on the poll's own path."""

    @property
    def max_prompt_chars(self) -> int:
        """Longest prompt accepted: one that always fits in `max_body_bytes`, at most MAX_PROMPT_CHARS."""
        fits = (self.max_body_bytes - RUN_BODY_OVERHEAD_BYTES) // MAX_JSON_BYTES_PER_CHAR
        return max(1, min(MAX_PROMPT_CHARS, fits))
