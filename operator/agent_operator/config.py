"""The operator's own configuration, read once from the environment at start-up and frozen."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

#: Prefix of every environment variable the operator reads.
ENV_PREFIX = "AGENTRY_"
#: Field manager of every server-side apply and status patch; `kubectl get -o yaml --show-managed-fields` names it.
FIELD_MANAGER = "agentry-operator"

LogFormat = Literal["json", "text"]
EventLevel = Literal["debug", "info", "warning", "error"]
T = TypeVar("T")


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the environment variable."""


def package_version() -> str:
    """Version of the installed `agentry` distribution, so the default image matches the operator."""
    try:
        return importlib.metadata.version("agentry")
    except importlib.metadata.PackageNotFoundError:
        return "latest"


def _default_image() -> str:
    return f"ghcr.io/agentry/agent-runtime:{package_version()}"


@dataclass(frozen=True, kw_only=True)
class OperatorConfig:
    """Everything the operator can be told; each field maps to `AGENTRY_<FIELD>` in upper case."""

    namespaces: tuple[str, ...] = ()
    """Namespaces to watch (comma list); empty watches the whole cluster (a namespace-scoped install sets it)."""
    runtime_image: str = field(default_factory=_default_image)
    """Image of the agent pods when spec.pod.image is not set: the runtime released with this operator."""
    log_format: LogFormat = "json"
    """json (one object per line, for log pipelines) or text (for a terminal)."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Lowest level logged; debug also shows kopf's internals."""
    liveness_endpoint: str = "http://0.0.0.0:8080/healthz"
    """kopf's liveness probe URL (the Deployment's livenessProbe points here); empty turns it off."""
    request_timeout_seconds: float = 30.0
    """Timeout of one API request (kopf's and the apply client's): a hung API server must not hang a handler."""
    watch_timeout_seconds: int = 300
    """Server-side timeout (whole seconds) of one watch request; the watch reconnects after it."""
    event_level: EventLevel = "warning"
    """Lowest level of kopf's own log lines posted as Events; at scale, info would post one per handler run.

    The operator's own Events (state changes, errors) are posted whatever this says.
    """
    health_poll_concurrency: int = 64
    """Pod health polls in flight at once across all agents; bounds sockets and memory at many pods."""
    metrics_endpoint: str = "http://0.0.0.0:9090/metrics"
    """Where the operator serves its Prometheus metrics (host, port; the path is always /metrics); empty turns
    it off."""
    retry_base_seconds: float = 2.0
    """First delay before a failed reconcile (missing Secret, API error) is retried; it doubles per attempt."""
    retry_max_seconds: float = 60.0
    """Longest delay between retries, so an agent recovers within a minute of its Secret appearing."""
    resync_seconds: float = 300.0
    """Interval of the full re-reconcile of every agent, a safety net under the watches of the children."""
    network_policy: bool = False
    """Render a NetworkPolicy per agent that admits traffic to its port only from its own namespace and the
    operator's; off by default because a cluster without a policy-enforcing CNI ignores it silently."""
    otlp_endpoint: str = ""
    """The OpenTelemetry collector (OTLP/HTTP base URL) agents send traces to when their
    spec.observability.tracing names none; empty: only agents with their own endpoint are traced."""
    operator_namespace: str = ""
    """Namespace the operator runs in (from AGENTRY_OPERATOR_NAMESPACE, else POD_NAMESPACE); used by the
    NetworkPolicy so the health poller can reach the pods."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> OperatorConfig:
        """Read every `AGENTRY_*` variable; a bad value raises ConfigError naming the variable."""
        values: dict[str, Any] = {}
        for item in dataclasses.fields(cls):
            name = ENV_PREFIX + item.name.upper()
            raw = environ.get(name)
            if item.name == "operator_namespace" and raw is None:
                raw = environ.get("POD_NAMESPACE")
            if raw is None:
                continue
            try:
                values[item.name] = _PARSERS[item.name](raw.strip())
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"{name}={raw!r}: {exc}") from None
        return cls(**values)

    def retry_delay(self, attempt: int) -> float:
        """Delay before retry number `attempt` (0-based): exponential, capped at retry_max_seconds."""
        return float(min(self.retry_max_seconds, self.retry_base_seconds * 2 ** min(attempt, 30)))


def _namespaces(raw: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    for name in names:
        if not name.replace("-", "").isalnum() or not name.islower() or len(name) > 63:
            raise ValueError(f"{name!r} is not a namespace name")
    return names


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return parse


def _positive(kind: Callable[[str], T]) -> Callable[[str], T]:
    def parse(raw: str) -> T:
        value = kind(raw)
        if cast(float, value) <= 0:
            raise ValueError("must be greater than 0")
        return value

    return parse


def _boolean(raw: str) -> bool:
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _endpoint(raw: str) -> str:
    if raw and not raw.startswith(("http://", "https://")):
        raise ValueError("must be an http(s):// URL, or empty to turn the endpoint off")
    return raw


def _otlp_endpoint(raw: str) -> str:
    if raw and not re.fullmatch(r"https?://[^\s/?#]+(/\S*)?", raw):
        raise ValueError("must be an http:// or https:// URL (the collector's OTLP/HTTP base), or empty")
    return raw.rstrip("/")


def _image(raw: str) -> str:
    if not raw or any(char.isspace() for char in raw):
        raise ValueError("must be an image reference without spaces")
    return raw


_PARSERS: dict[str, Callable[[str], Any]] = {
    "namespaces": _namespaces,
    "runtime_image": _image,
    "otlp_endpoint": _otlp_endpoint,
    "log_format": _choice("json", "text"),
    "log_level": _choice("debug", "info", "warning", "error"),
    "liveness_endpoint": _endpoint,
    "request_timeout_seconds": _positive(float),
    "watch_timeout_seconds": _positive(int),
    "event_level": _choice("debug", "info", "warning", "error"),
    "health_poll_concurrency": _positive(int),
    "metrics_endpoint": _endpoint,
    "retry_base_seconds": _positive(float),
    "retry_max_seconds": _positive(float),
    "resync_seconds": _positive(float),
    "network_policy": _boolean,
    "operator_namespace": lambda raw: _namespaces(raw)[0] if raw else "",
}
