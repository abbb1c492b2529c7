"""AgentDeployment (agentry.dev/v1alpha1): spec and status, the source of truth for the CRD."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import ConfigDict, Field, StringConstraints

from .base import ApiModel, Rule

GROUP = "agentry.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "AgentDeployment"
PLURAL = "agentdeployments"
SINGULAR = "agentdeployment"
SHORT_NAMES = ("agents", "agent")
CATEGORIES = ("agentry",)

DnsSubdomain = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
    ),
]
SecretKey = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]
HttpURL = Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://[^\s/?#]+([/?#]\S*)?$")]
Quantity = Annotated[
    int | str,
    Field(json_schema_extra={"x-kubernetes-int-or-string": True}),
]

#: Model providers whose models speak the OpenAI chat API, so they can be pointed at `endpoint.baseURL`.
OPENAI_COMPATIBLE_PROVIDERS = ("openai", "openai-chat", "openai-responses", "ollama")


class SecretKeyRef(ApiModel):
    """A key in a Secret in the agent's namespace; values never appear in the spec."""

    name: DnsSubdomain
    """Name of the Secret."""
    key: SecretKey
    """Key inside the Secret whose value is used."""


class LocalObjectReference(ApiModel):
    """A reference to an object in the same namespace, by name."""

    name: DnsSubdomain
    """Name of the object."""


# --- agent -------------------------------------------------------------------------------------


class EndpointSpec(ApiModel):
    """An OpenAI-compatible endpoint (Ollama, vLLM, a gateway) that serves the model."""

    base_url: HttpURL = Field(alias="baseURL")
    """Base URL of the OpenAI-compatible API, e.g. http://ollama.llm.svc:11434/v1."""
    api_key_secret_ref: SecretKeyRef | None = None
    """Secret key holding the API key; omit for endpoints that need none."""


class ModelSettings(ApiModel):
    """Sampling settings passed to the model on every request."""

    temperature: float | None = Field(None, ge=0, le=2)
    """Sampling temperature; omit for the provider's default."""
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    """Upper bound on tokens the model may generate per response."""
    top_p: float | None = Field(None, ge=0, le=1)
    """Nucleus sampling probability mass; omit for the provider's default."""
    seed: int | None = None
    """Seed for providers that support deterministic sampling."""
    timeout_seconds: float | None = Field(None, gt=0, le=3600)
    """Timeout of one model request, in seconds."""


class UsageLimits(ApiModel):
    """Limits on one agent run; a run that would exceed them fails instead of running up a bill."""

    request_limit: int | None = Field(50, ge=1, le=10_000)
    """Model requests allowed in one run (tool calls and retries count)."""
    tool_calls_limit: int | None = Field(None, ge=1, le=10_000)
    """Successful tool calls allowed in one run; omit for no limit."""
    input_tokens_limit: int | None = Field(None, ge=1)
    """Input (prompt) tokens allowed in one run; omit for no limit."""
    output_tokens_limit: int | None = Field(None, ge=1)
    """Output (response) tokens allowed in one run; omit for no limit."""
    total_tokens_limit: int | None = Field(None, ge=1)
    """Input plus output tokens allowed in one run; omit for no limit."""


#: `package.module:attribute`, each part a Python identifier (attribute may be dotted: `module:App.agent`).
Entrypoint = Annotated[
    str,
    StringConstraints(
        max_length=512,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$",
    ),
]
#: An MCP tool's name as servers publish it (the MCP spec allows letters, digits, `_`, `-` and `.`).
ToolName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")]
#: An HTTP header name: letters, digits, `-` and `_` (the tokens headers use in practice), short enough for the
#: API server's CEL cost budget of the rule that compares names without case.
HeaderName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z][0-9A-Za-z_-]*$")]
#: The built-in tools, by name (agent_runtime/tools.py).
BuiltinTool = Literal["lookup_result", "cache_get", "cache_set", "call_external_api"]
#: Headers Agentry sets itself on MCP requests, which a header entry may not replace.
RESERVED_MCP_HEADERS = ("content-type", "accept", "mcp-session-id", "mcp-protocol-version", "host", "content-length")


class CodeSpec(ApiModel):
    """The user's own PydanticAI agent, imported from the pod's image (spec.pod.image)."""

    entrypoint: Entrypoint
    """`package.module:attribute`: a pydantic-ai Agent, an `agent_runtime.sdk.AgentApp`, or a factory that is given
    the agent's `agent_runtime.sdk.Services` and returns either."""


class BuiltinToolsetSpec(ApiModel):
    """Agentry's own tools: stored results, a scratch cache and the configured external API."""

    tools: list[BuiltinTool] | None = Field(None, max_length=4)
    """Which built-in tools the agent gets; omit for all of them (call_external_api only with
    spec.services.externalAPI)."""


class McpHeader(ApiModel):
    """A header sent with every request to an MCP server, its value from a Secret."""

    name: HeaderName
    """Header name, e.g. Authorization or X-Api-Key."""
    secret_ref: SecretKeyRef
    """Secret key holding the header's value (sent as is, e.g. `Bearer abc`)."""


def _mcp_headers_ok(mcp: McpToolsetSpec) -> bool:
    names = [header.name.lower() for header in mcp.headers]
    if len(set(names)) != len(names) or any(name in RESERVED_MCP_HEADERS for name in names):
        return False
    return not (mcp.forward_bearer_token and "authorization" in names)


class McpToolsetSpec(ApiModel):
    """Tools served by an MCP server over HTTP (pydantic-ai's MCP client)."""

    rules = (
        Rule(
            cel="!has(self.headers) || self.headers.all(h, "
            "self.headers.exists_one(o, o.name.lowerAscii() == h.name.lowerAscii()) && "
            "!(h.name.lowerAscii() in [" + ", ".join(f"'{name}'" for name in RESERVED_MCP_HEADERS) + "]) && "
            "!(has(self.forwardBearerToken) && self.forwardBearerToken && h.name.lowerAscii() == 'authorization'))",
            message="spec.agent.toolsets[].mcp.headers: each header once, none of "
            + ", ".join(RESERVED_MCP_HEADERS)
            + ", and no Authorization header when forwardBearerToken is true",
            check=_mcp_headers_ok,
            field_path=".headers",
        ),
    )

    url: HttpURL
    """The server's MCP endpoint, e.g. http://tickets-mcp.tools.svc:8000/mcp."""
    transport: Literal["streamable-http", "sse"] = "streamable-http"
    """MCP transport: streamable HTTP (current) or the older HTTP+SSE."""
    headers: list[McpHeader] = Field([], max_length=8)
    """Headers for every request to the server, values from Secrets (API keys, static bearer tokens)."""
    allowed_tools: list[ToolName] | None = Field(None, max_length=256)
    """Tools of the server the agent may call; omit for all the server lists."""
    tool_prefix: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    """Prefix for this server's tool names (`<prefix>_<tool>`), when two servers publish the same name."""
    timeout_seconds: float = Field(10, gt=0, le=600)
    """Seconds to connect, and for each tool call; a server slower than that fails the call (never hangs)."""
    forward_bearer_token: bool = False
    """Send the caller's own bearer token to the server (Authorization), so it can act as the caller.

    The server must then accept the agent's tokens; a session is opened per run, since tokens differ."""


def _one_toolset_kind(toolset: ToolsetSpec) -> bool:
    return (toolset.builtin is None) != (toolset.mcp is None)


def _approval_names_builtin(toolset: ToolsetSpec) -> bool:
    if toolset.builtin is None:
        return True
    offered = toolset.builtin.tools if toolset.builtin.tools is not None else list(get_args(BuiltinTool))
    return all(name in offered for name in toolset.require_approval)


class ToolsetSpec(ApiModel):
    """One source of tools: Agentry's built-in tools or an MCP server."""

    rules = (
        Rule(
            cel="has(self.builtin) != has(self.mcp)",
            message="spec.agent.toolsets[]: set exactly one of builtin and mcp",
            check=_one_toolset_kind,
        ),
        Rule(
            cel="!has(self.builtin) || !has(self.requireApproval) || self.requireApproval.all(n, "
            "(has(self.builtin.tools) && n in self.builtin.tools) || "
            "(!has(self.builtin.tools) && n in ['lookup_result', 'cache_get', 'cache_set', 'call_external_api']))",
            message="spec.agent.toolsets[].requireApproval: name only tools this built-in toolset offers",
            check=_approval_names_builtin,
            field_path=".requireApproval",
        ),
    )

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    """Name of the toolset (unique in the list); shown in /health and the audit trail."""
    builtin: BuiltinToolsetSpec | None = None
    """Agentry's built-in tools."""
    mcp: McpToolsetSpec | None = None
    """An MCP server's tools."""
    require_approval: list[ToolName] = Field([], max_length=64, json_schema_extra={"x-kubernetes-list-type": "set"})
    """Tools of this toolset (named as the model sees them, after any toolPrefix) whose every call waits for a
    person's approval: the run pauses and answers `awaitingApproval` with the pending calls, and
    `POST /v1/conversations/{id}/approvals` approves or denies them. A code agent's own tools ask for it with
    pydantic-ai's `requires_approval=True`."""


def _endpoint_model_ok(agent: AgentSpec) -> bool:
    return agent.endpoint is None or agent.provider in OPENAI_COMPATIBLE_PROVIDERS


def _output_schema_ok(agent: AgentSpec) -> bool:
    return agent.output_schema is None or agent.output_schema.get("type") == "object"


def _model_or_code(agent: AgentSpec) -> bool:
    return agent.model is not None or agent.code is not None


def _no_instructions_in_code_mode(agent: AgentSpec) -> bool:
    return agent.code is None or agent.instructions is None


def _toolset_names_unique(agent: AgentSpec) -> bool:
    names = [toolset.name for toolset in agent.toolsets or []]
    return len(set(names)) == len(names)


class PricingSpec(ApiModel):
    """What the agent's model charges, so that each run's cost is known (in its result, audit record and metrics)."""

    input_per_million_tokens: float = Field(ge=0, le=1_000_000)
    """Price of one million input (prompt) tokens, in `currency`."""
    output_per_million_tokens: float = Field(ge=0, le=1_000_000)
    """Price of one million output (completion) tokens, in `currency`."""
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    """ISO 4217 code of the prices' currency."""


class AgentSpec(ApiModel):
    """The PydanticAI agent: declarative (model, instructions, output schema) or the user's own code.

    In code mode (`code`), the user's Agent brings its model, instructions and tools; `model` and `endpoint`
    override its model, `modelSettings` and `usageLimits` apply to every run, `outputSchema` (with
    `outputRetries`) replaces its output type, `toolsets` adds tools and `instructions` is refused.
    """

    rules = (
        Rule(
            cel="has(self.model) || has(self.code)",
            message="spec.agent.model is required unless spec.agent.code names the agent's own code",
            check=_model_or_code,
            field_path=".model",
        ),
        Rule(
            cel="!has(self.endpoint) || "
            "(has(self.model) && self.model.matches('^(openai|openai-chat|openai-responses|ollama):'))",
            message="spec.agent.endpoint needs an OpenAI-compatible spec.agent.model "
            "(openai:, openai-chat:, openai-responses: or ollama:)",
            check=_endpoint_model_ok,
            field_path=".model",
        ),
        Rule(
            cel="!has(self.outputSchema) || (has(self.outputSchema.type) && self.outputSchema.type == 'object')",
            message="spec.agent.outputSchema must be a JSON Schema whose type is 'object'",
            check=_output_schema_ok,
            field_path=".outputSchema",
        ),
        Rule(
            cel="!has(self.code) || !has(self.instructions)",
            message="spec.agent.instructions does not apply with spec.agent.code: the agent's instructions are in "
            "its code",
            check=_no_instructions_in_code_mode,
            field_path=".instructions",
        ),
        Rule(
            cel="!has(self.toolsets) || self.toolsets.all(t, self.toolsets.exists_one(o, o.name == t.name))",
            message="spec.agent.toolsets: each toolset name must be unique",
            check=_toolset_names_unique,
            field_path=".toolsets",
        ),
    )

    model: str | None = Field(None, max_length=256, pattern=r"^(test|[a-z][a-z0-9-]*:\S+)$")
    """pydantic-ai model string, `provider:model` (e.g. openai-chat:gpt-4o-mini); `test` runs offline.

    Required for a declarative agent; with `code`, it replaces the model the user's Agent names."""
    code: CodeSpec | None = None
    """The user's own PydanticAI agent in the pod's image, instead of a declarative one."""
    endpoint: EndpointSpec | None = None
    """OpenAI-compatible endpoint to send model requests to, instead of the provider's default."""
    instructions: str | None = Field(None, max_length=100_000)
    """Instructions (system prompt) given to the agent on every run; declarative agents only."""
    output_schema: dict[str, Any] | None = Field(
        None,
        json_schema_extra={
            "x-kubernetes-preserve-unknown-fields": True,
            # Declared so that the CEL rule may read it; the rest of the JSON Schema stays free-form.
            "properties": {"type": {"type": "string", "description": "JSON Schema type; must be object."}},
        },
    )
    """JSON Schema (type object) the agent's output must match; omit for plain text (or, with `code`, the
    agent's own output type)."""
    toolsets: list[ToolsetSpec] | None = Field(None, max_length=16)
    """Sources of tools: the built-in tools, MCP servers. Omit for the built-in tools alone on a declarative
    agent and for none on a code agent (it has its own); [] gives none."""
    model_settings: ModelSettings = Field(default_factory=ModelSettings)
    """Sampling settings for every model request."""
    usage_limits: UsageLimits = Field(default_factory=UsageLimits)
    """Limits on requests and tokens per run."""
    retries: int = Field(1, ge=0, le=10)
    """Times a failing call of an Agentry toolset's tool (built-in, MCP) is retried by the model."""
    output_retries: int = Field(2, ge=0, le=10)
    """Times the model is asked again when its output does not match outputSchema."""
    pricing: PricingSpec | None = None
    """The model's prices per million tokens; omit when cost is not tracked (runs then report tokens only)."""

    @property
    def provider(self) -> str | None:
        """The provider part of the model string (`test` for the offline model), None without a model."""
        return None if self.model is None else self.model.split(":", 1)[0]

    def effective_toolsets(self) -> list[ToolsetSpec]:
        """The toolsets the agent gets: as listed, or the default of its mode when the list is omitted."""
        if self.toolsets is not None:
            return list(self.toolsets)
        if self.code is not None:
            return []
        return [ToolsetSpec(name="builtin", builtin=BuiltinToolsetSpec())]


# --- scaling and concurrency -------------------------------------------------------------------


class AutoscalingProvider(StrEnum):
    """Who decides the replica count when autoscaling is enabled."""

    OPERATOR = "Operator"
    HPA = "HPA"


def _min_le_max(scaling: AutoscalingSpec) -> bool:
    return scaling.min_replicas <= scaling.max_replicas


def _hpa_has_target(scaling: AutoscalingSpec) -> bool:
    return scaling.provider != AutoscalingProvider.HPA or scaling.target_cpu_utilization_percent is not None


class AutoscalingSpec(ApiModel):
    """Scaling between minReplicas and maxReplicas, by the operator's health signal or by an HPA."""

    rules = (
        Rule(
            cel="self.minReplicas <= self.maxReplicas",
            message="spec.autoscaling.minReplicas must be less than or equal to spec.autoscaling.maxReplicas",
            check=_min_le_max,
            field_path=".minReplicas",
        ),
        Rule(
            cel="self.provider != 'HPA' || has(self.targetCPUUtilizationPercent)",
            message="spec.autoscaling.targetCPUUtilizationPercent is required when spec.autoscaling.provider is HPA",
            check=_hpa_has_target,
            field_path=".targetCPUUtilizationPercent",
        ),
    )

    enabled: bool = False
    """Let the replica count move between minReplicas and maxReplicas."""
    provider: AutoscalingProvider = AutoscalingProvider.OPERATOR
    """Operator scales on in-flight requests and p95 latency; HPA delegates to a HorizontalPodAutoscaler."""
    min_replicas: int = Field(1, ge=1, le=1000)
    """Fewest replicas autoscaling may leave running."""
    max_replicas: int = Field(5, ge=1, le=1000)
    """Most replicas autoscaling may start."""
    target_in_flight_per_replica: int = Field(8, ge=1, le=10_000, alias="targetInFlightPerReplica")
    """Average in-flight requests per replica above which the operator scales out."""
    target_p95_latency_ms: int | None = Field(None, ge=1, alias="targetP95LatencyMs")
    """p95 latency (ms) above which the operator scales out; omit to scale on load only."""
    target_cpu_utilization_percent: int | None = Field(None, ge=1, le=100, alias="targetCPUUtilizationPercent")
    """CPU utilisation target of the HPA (provider HPA only)."""
    scale_down_stabilization_seconds: int = Field(300, ge=0, le=3600)
    """Time the load must stay low before replicas are removed; prevents flapping."""


class ConcurrencySpec(ApiModel):
    """How much work one pod takes at once; beyond it requests are refused with Retry-After."""

    max_concurrent_requests: int = Field(10, ge=1, le=10_000)
    """Agent runs executing at once in one pod."""
    max_queued_requests: int = Field(50, ge=0, le=100_000)
    """Requests waiting for a slot in one pod; more are answered 429 with Retry-After."""
    request_timeout_seconds: float = Field(60, gt=0, le=3600)
    """Time one request may take, queueing included, before it fails with 504."""


class ConversationsSpec(ApiModel):
    """Bounds of the multi-turn conversations on /v1/run (a `conversationId` continues one).

    The history lives in the agent's database (SQLite or PostgreSQL), so any replica continues a conversation.
    """

    max_messages: int = Field(100, ge=2, le=10_000)
    """Messages kept per conversation; beyond it the oldest whole turns are dropped, so the history the model
    sees always starts with a user's prompt (a tool result never loses its call)."""
    max_bytes: int = Field(1_000_000, ge=1024, le=64 * 1024 * 1024)
    """Bytes of stored history (its JSON) kept per conversation; the oldest whole turns go first beyond it.
    Bounds what every turn sends to the model as well as the row's size."""
    ttl_seconds: int = Field(86_400, ge=1, le=365 * 24 * 3600)
    """Seconds after its last turn that a conversation expires (then 404, and its row is deleted)."""


class Protocol(StrEnum):
    """A client protocol an agent can serve besides Agentry's own /v1 API (which is always served)."""

    OPENAI = "openai"
    """OpenAI-compatible `POST /v1/chat/completions` (streaming and not); the model name is the agent's name."""
    A2A = "a2a"
    """Agent2Agent: the agent card at `/.well-known/agent.json` (also `agent-card.json`) and JSON-RPC at `/a2a`."""
    AG_UI = "ag-ui"
    """AG-UI run input in, AG-UI events out (Server-Sent Events) at `POST /v1/ag-ui`."""


#: What `spec.protocols` is when omitted: every protocol, each behind the same envelope (auth, limits, audit).
DEFAULT_PROTOCOLS = [Protocol.OPENAI, Protocol.A2A, Protocol.AG_UI]


# --- services ----------------------------------------------------------------------------------


class DatabaseSpec(ApiModel):
    """PostgreSQL for run results and the audit trail (SQLite on the pod's volume when absent)."""

    url_secret_ref: SecretKeyRef = Field(alias="urlSecretRef")
    """Secret key holding the postgresql:// URL, credentials included."""
    pool_size: int = Field(5, ge=1, le=100)
    """Connections kept open per pod."""


class CacheSpec(ApiModel):
    """Redis for caching and rate limits shared across replicas (in-process when absent)."""

    url_secret_ref: SecretKeyRef = Field(alias="urlSecretRef")
    """Secret key holding the redis:// or rediss:// URL."""
    default_ttl_seconds: int = Field(300, ge=1, le=30 * 24 * 3600, alias="defaultTTLSeconds")
    """Time entries live when a caller gives no TTL."""


class CircuitBreakerSpec(ApiModel):
    """Stop calling an external API that keeps failing, and try again after a pause."""

    failure_threshold: int = Field(5, ge=1, le=1000)
    """Consecutive failures that open the circuit."""
    reset_timeout_seconds: float = Field(30, gt=0, le=3600)
    """Time the circuit stays open before one trial call is let through."""


class ExternalApiSpec(ApiModel):
    """An HTTP API the agent's tools call, with timeouts, retries and a circuit breaker."""

    base_url: HttpURL = Field(alias="baseURL")
    """Base URL of the API."""
    api_key_secret_ref: SecretKeyRef | None = None
    """Secret key holding a bearer token sent as Authorization; omit for none."""
    timeout_seconds: float = Field(5, gt=0, le=300)
    """Timeout of one call."""
    max_retries: int = Field(3, ge=0, le=10)
    """Retries (with exponential backoff) of a call that failed with a connection error or a 5xx."""
    circuit_breaker: CircuitBreakerSpec = Field(default_factory=CircuitBreakerSpec)
    """When to stop calling the API for a while."""


class ServicesSpec(ApiModel):
    """Production services wired into the agent's tools through dependency injection."""

    database: DatabaseSpec | None = None
    """PostgreSQL; omit for SQLite on the pod's volume."""
    cache: CacheSpec | None = None
    """Redis; omit for an in-process cache (rate limits then hold per pod)."""
    external_api: ExternalApiSpec | None = Field(None, alias="externalAPI")
    """An external HTTP API for the agent's tools."""


# --- security ----------------------------------------------------------------------------------


class AuthMode(StrEnum):
    """How callers prove who they are."""

    JWT = "jwt"
    NONE = "none"


#: Bounds of spec.security.auth.maxTokenLifetimeSeconds: an hour is the shortest session worth a token,
#: a week the longest a leaked bearer token should stay usable.
MIN_TOKEN_LIFETIME_SECONDS = 3600
MAX_TOKEN_LIFETIME_SECONDS = 7 * 86_400
DEFAULT_TOKEN_LIFETIME_SECONDS = 86_400

JwtAlgorithm = Literal["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


def _jwt_has_key(auth: AuthSpec) -> bool:
    if auth.mode != AuthMode.JWT:
        return True
    hmac = any(alg.startswith("HS") for alg in auth.algorithms)
    return auth.secret_ref is not None if hmac else auth.public_key_secret_ref is not None


def _jwt_single_family(auth: AuthSpec) -> bool:
    return len({alg.startswith("HS") for alg in auth.algorithms}) <= 1


class AuthSpec(ApiModel):
    """Authentication of callers; JWT by default, so an agent is never open by accident."""

    rules = (
        Rule(
            cel="self.mode != 'jwt' || (self.algorithms.exists(a, a.startsWith('HS')) ? has(self.secretRef) "
            ": has(self.publicKeySecretRef))",
            message="spec.security.auth.mode jwt needs spec.security.auth.secretRef (HS* algorithms) or "
            "publicKeySecretRef (RS*/ES*/PS* algorithms); set mode: none to run without authentication",
            check=_jwt_has_key,
        ),
        Rule(
            cel="!(self.algorithms.exists(a, a.startsWith('HS')) && self.algorithms.exists(a, !a.startsWith('HS')))",
            message="spec.security.auth.algorithms must not mix HMAC (HS*) with public-key algorithms (key confusion)",
            check=_jwt_single_family,
            field_path=".algorithms",
        ),
    )

    mode: AuthMode = AuthMode.JWT
    """jwt checks a bearer token on every request; none accepts anyone (development only)."""
    secret_ref: SecretKeyRef | None = None
    """Secret key holding the HMAC key for HS* algorithms."""
    public_key_secret_ref: SecretKeyRef | None = None
    """Secret key holding the PEM public key for RS*, ES* and PS* algorithms."""
    algorithms: list[JwtAlgorithm] = Field(["HS256"], min_length=1, max_length=9)
    """Algorithms accepted in the token header; `none` never is."""
    issuer: str = Field("agentry", min_length=1, max_length=1024)
    """Required `iss` claim."""
    audience: str = Field("agentry", min_length=1, max_length=1024)
    """Required `aud` claim."""
    roles_claim: str = Field("roles", min_length=1, max_length=256)
    """Claim that lists the caller's roles."""
    leeway_seconds: int = Field(30, ge=0, le=300)
    """Clock skew tolerated when checking exp and nbf."""
    max_token_lifetime_seconds: int = Field(
        DEFAULT_TOKEN_LIFETIME_SECONDS, ge=MIN_TOKEN_LIFETIME_SECONDS, le=MAX_TOKEN_LIFETIME_SECONDS
    )
    """Longest lifetime (exp - iat) a token may claim; a longer one, or one without iat, is refused."""


Role = Literal["admin", "agent_operator", "data_analyst", "read_only"]


class AuthorizationSpec(ApiModel):
    """Which roles may use the agent; each role's endpoints are fixed by the runtime."""

    allowed_roles: list[Role] = Field(["admin", "agent_operator"], min_length=1, max_length=4)
    """Roles admitted at all (admin, agent_operator, data_analyst, read_only)."""


class RateLimitSpec(ApiModel):
    """Per-principal limits, shared across replicas through Redis when a cache is configured."""

    requests_per_minute: int = Field(120, ge=1, le=1_000_000)
    """Requests one principal may make per minute."""
    tokens_per_minute: int = Field(200_000, ge=1, le=1_000_000_000)
    """Model tokens (in plus out) one principal may spend per minute."""


class BudgetPeriod(StrEnum):
    """How long a budget lasts before it starts again: a UTC calendar day or month."""

    DAILY = "daily"
    MONTHLY = "monthly"


class BudgetLimits(ApiModel):
    """What may be spent in one budget period: model tokens, cost, or both (the first reached counts)."""

    tokens: int | None = Field(None, ge=1, le=1_000_000_000_000)
    """Model tokens (in plus out) per period."""
    cost: float | None = Field(None, gt=0, le=1_000_000_000)
    """Cost per period, in spec.agent.pricing's currency (so it needs spec.agent.pricing)."""


def _limits_set(limits: BudgetLimits | None) -> bool:
    return limits is None or limits.tokens is not None or limits.cost is not None


class BudgetsSpec(ApiModel):
    """Token and cost budgets per UTC day or month, shared by the replicas through Redis when a cache is set.

    A run is refused (429 `budget_exceeded`, naming the budget and when it resets) once what was spent in the
    period reached a budget; a run that was let in finishes, so spend stops within one run of the budget.
    Without a cache each pod keeps its own ledger (the budget then holds per pod, as the rate limits do).
    """

    rules = (
        Rule(
            cel="!has(self.perPrincipal) || has(self.perPrincipal.tokens) || has(self.perPrincipal.cost)",
            message="spec.security.budgets.perPrincipal needs tokens, cost or both",
            check=lambda budgets: _limits_set(budgets.per_principal),
            field_path=".perPrincipal",
        ),
        Rule(
            cel="!has(self.perAgent) || has(self.perAgent.tokens) || has(self.perAgent.cost)",
            message="spec.security.budgets.perAgent needs tokens, cost or both",
            check=lambda budgets: _limits_set(budgets.per_agent),
            field_path=".perAgent",
        ),
    )

    period: BudgetPeriod = BudgetPeriod.DAILY
    """`daily` (resets at 00:00 UTC) or `monthly` (resets on the 1st, 00:00 UTC)."""
    per_principal: BudgetLimits | None = None
    """What each caller (JWT subject) may spend per period."""
    per_agent: BudgetLimits | None = None
    """What all callers of this agent together may spend per period."""
    warn_at_percent: int = Field(80, ge=1, le=100)
    """Spend, in percent of a budget, at which a warning is raised (an Event for the agent's budget,
    a metric and a log line for a caller's)."""


class RedactionMode(StrEnum):
    """What replaces a piece of PII before anything is stored or logged."""

    HMAC = "hmac"
    MASK = "mask"
    DROP = "drop"


PiiKind = Literal["email", "phone", "ssn", "creditCard", "ipAddress"]


def _hmac_has_key(privacy: PrivacySpec) -> bool:
    return privacy.mode != RedactionMode.HMAC or privacy.hmac_key_secret_ref is not None


class PrivacySpec(ApiModel):
    """PII anonymisation applied to prompts and outputs before they are stored or logged."""

    rules = (
        Rule(
            cel="self.mode != 'hmac' || has(self.hmacKeySecretRef)",
            message="spec.security.privacy.hmacKeySecretRef is required when spec.security.privacy.mode is hmac",
            check=_hmac_has_key,
            field_path=".hmacKeySecretRef",
        ),
    )

    enabled: bool = True
    """Anonymise PII in what is stored and logged."""
    redact_fields: list[PiiKind] = Field(["email", "phone", "ssn", "creditCard"], max_length=5)
    """Kinds of PII to find and replace."""
    mode: RedactionMode = RedactionMode.MASK
    """hmac: a keyed pseudonym (joinable, not reversible); mask: a fixed marker; drop: removed."""
    hmac_key_secret_ref: SecretKeyRef | None = None
    """Secret key holding the HMAC key (mode hmac); there is no built-in salt."""


class AuditSpec(ApiModel):
    """The audit trail: one hash-chained record per request, in the database and on stdout."""

    enabled: bool = True
    """Record every request."""


class MetricsSpec(ApiModel):
    """Access to the runtime's Prometheus endpoint."""

    require_auth: bool = False
    """Require a bearer token with the read_metrics permission (admin, data_analyst) on /metrics."""


class SecuritySpec(ApiModel):
    """Authentication, authorisation, rate limits, privacy and audit."""

    auth: AuthSpec
    """How callers authenticate; required, so that no agent is open by accident (mode: none opts out)."""
    authorization: AuthorizationSpec = Field(default_factory=AuthorizationSpec)
    """Which roles may call the agent."""
    rate_limit: RateLimitSpec = Field(default_factory=RateLimitSpec)
    """Per-principal request and token limits."""
    budgets: BudgetsSpec | None = None
    """Daily or monthly token and cost budgets per caller and per agent; none by default."""
    privacy: PrivacySpec = Field(default_factory=PrivacySpec)
    """PII anonymisation."""
    audit: AuditSpec = Field(default_factory=AuditSpec)
    """Audit logging."""
    allowed_origins: list[Annotated[str, StringConstraints(pattern=r"^(\*|https?://[^\s/]+)$")]] = Field(
        [], max_length=100
    )
    """Browser origins allowed by CORS (scheme://host[:port], or *); empty allows none."""
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    """Who may read the runtime's /metrics."""


# --- health, pods ------------------------------------------------------------------------------


class TracingSpec(ApiModel):
    """OpenTelemetry traces of every request, sent over OTLP/HTTP to a collector.

    The runtime also honours the standard `OTEL_*` variables (which win over these fields), so it traces the
    same way outside Kubernetes. Exporting runs in the background: a slow or dead collector never delays nor
    fails a request, and shows in `/health` as a degraded `tracing` dependency.
    """

    enabled: bool = True
    """False turns tracing off, even when the operator has a default collector."""
    endpoint: HttpURL | None = None
    """The collector's OTLP/HTTP base URL (spans go to `<endpoint>/v1/traces`), e.g.
    http://otel-collector.observability:4318; omitted: the operator's default (chart value `tracing.endpoint`),
    and no tracing when there is none."""
    headers_secret_ref: SecretKeyRef | None = None
    """A Secret key holding headers for the collector (an API key), as `name=value` pairs separated by commas,
    the format of OTEL_EXPORTER_OTLP_HEADERS."""
    sampling_ratio: float = Field(1.0, ge=0, le=1)
    """Share of new traces recorded; a caller's traceparent decides for the requests it traces (parent-based)."""
    capture_content: bool = False
    """Record prompts, outputs and tool arguments in the spans, through the same PII redaction as the audit
    trail; off: spans carry names, sizes, tokens and timings only."""


class ObservabilitySpec(ApiModel):
    """Traces (metrics are always exported at /metrics)."""

    tracing: TracingSpec = Field(default_factory=TracingSpec)
    """Where and how much to trace."""


class HealthSpec(ApiModel):
    """How the operator judges the agent's pods, and when it restarts them."""

    poll_interval_seconds: int = Field(10, ge=2, le=3600)
    """Time between two polls of a pod's /health."""
    timeout_seconds: float = Field(2, gt=0, le=60)
    """Time a poll may take before the pod counts as unreachable."""
    failure_threshold: int = Field(3, ge=1, le=100)
    """Consecutive unhealthy or unreachable polls before a pod is restarted."""
    max_p95_latency_ms: int | None = Field(None, ge=1, alias="maxP95LatencyMs")
    """p95 latency (ms) above which a pod counts as degraded; omit to ignore latency."""
    max_error_rate_percent: float = Field(5, ge=0, le=100)
    """Error rate (percent of recent requests) above which a pod counts as degraded."""
    startup_grace_seconds: int = Field(30, ge=0, le=3600)
    """Time after a pod starts during which it is never restarted."""
    restart_cooldown_seconds: int = Field(120, ge=0, le=86_400)
    """Least time between two restarts of this agent's pods."""
    max_restarts_per_hour: int = Field(3, ge=0, le=1000)
    """Restarts allowed per hour; past it the operator stops restarting and reports Degraded."""


class Toleration(ApiModel):
    """A pod toleration (core/v1 Toleration)."""

    key: str | None = None
    """Taint key the toleration applies to; empty matches all keys."""
    operator: Literal["Exists", "Equal"] | None = None
    """Exists or Equal (default Equal)."""
    value: str | None = None
    """Taint value to match with Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to match; empty matches all."""
    toleration_seconds: int | None = None
    """For NoExecute: how long the pod stays bound after the taint appears."""


class Resources(ApiModel):
    """Compute resources of the runtime container (core/v1 ResourceRequirements)."""

    requests: dict[str, Quantity] = {"cpu": "100m", "memory": "256Mi"}
    """Resources reserved for the container."""
    limits: dict[str, Quantity] = {"memory": "512Mi"}
    """Most the container may use."""


class PodSpec(ApiModel):
    """Settings of the agent's pods."""

    image: str | None = Field(None, max_length=1024, pattern=r"^\S+$")
    """Runtime image; omit for the operator's default (the runtime that matches its version)."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    """When the kubelet pulls the image."""
    image_pull_secrets: list[LocalObjectReference] = Field([], max_length=16)
    """Secrets with registry credentials for the image."""
    resources: Resources = Field(default_factory=Resources)
    """CPU and memory requests and limits."""
    node_selector: dict[str, str] = {}
    """Labels a node must have to run the pods."""
    tolerations: list[Toleration] = Field([], max_length=64)
    """Taints the pods tolerate."""
    affinity: dict[str, Any] | None = Field(None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})
    """Pod affinity and anti-affinity (core/v1 Affinity); when set, no default spread is added."""
    topology_spread_constraints: list[dict[str, Any]] | None = Field(None, max_length=16)
    """Spread of the pods over nodes or zones (core/v1 TopologySpreadConstraint); [] turns the default off.

    Unset, an agent that may run more than one pod (and sets no affinity) is spread softly across nodes.
    """
    priority_class_name: str | None = Field(None, max_length=253)
    """PriorityClass of the pods."""
    annotations: dict[str, str] = {}
    """Extra annotations on the pods."""
    labels: dict[str, str] = {}
    """Extra labels on the pods (the operator's own labels win)."""


# --- the spec ----------------------------------------------------------------------------------


def _replicas_in_range(spec: AgentDeploymentSpec) -> bool:
    scaling = spec.autoscaling
    if spec.replicas is None or not scaling.enabled:
        return True
    return scaling.min_replicas <= spec.replicas <= scaling.max_replicas


def _forwarding_has_tokens(spec: AgentDeploymentSpec) -> bool:
    forwards = any(t.mcp is not None and t.mcp.forward_bearer_token for t in spec.agent.toolsets or [])
    return not forwards or spec.security.auth.mode != AuthMode.NONE


def _cost_budget_has_prices(spec: AgentDeploymentSpec) -> bool:
    budgets = spec.security.budgets
    if budgets is None or spec.agent.pricing is not None:
        return True
    return all(limits is None or limits.cost is None for limits in (budgets.per_principal, budgets.per_agent))


def _code_has_image(spec: AgentDeploymentSpec) -> bool:
    return spec.agent.code is None or spec.pod.image is not None


class AgentDeploymentSpec(ApiModel):
    """The desired state of one agent."""

    rules = (
        Rule(
            cel="!has(self.replicas) || !self.autoscaling.enabled || "
            "(self.replicas >= self.autoscaling.minReplicas && self.replicas <= self.autoscaling.maxReplicas)",
            message="spec.replicas must lie between spec.autoscaling.minReplicas and maxReplicas "
            "while autoscaling is enabled",
            check=_replicas_in_range,
            field_path=".replicas",
        ),
        Rule(
            cel="!has(self.agent.code) || has(self.pod.image)",
            message="spec.pod.image is required with spec.agent.code: the image that holds the agent's code",
            check=_code_has_image,
            field_path=".pod",
        ),
        Rule(
            cel="!has(self.agent.toolsets) || !has(self.security.auth.mode) || self.security.auth.mode != 'none' || "
            "!self.agent.toolsets.exists(t, has(t.mcp) && has(t.mcp.forwardBearerToken) && t.mcp.forwardBearerToken)",
            message="spec.agent.toolsets[].mcp.forwardBearerToken needs spec.security.auth.mode jwt: with mode none "
            "callers send no token to forward",
            check=_forwarding_has_tokens,
            field_path=".agent.toolsets",
        ),
        Rule(
            cel="has(self.agent.pricing) || !has(self.security.budgets) || "
            "((!has(self.security.budgets.perPrincipal) || !has(self.security.budgets.perPrincipal.cost)) && "
            "(!has(self.security.budgets.perAgent) || !has(self.security.budgets.perAgent.cost)))",
            message="spec.security.budgets: a cost budget (perPrincipal.cost or perAgent.cost) needs "
            "spec.agent.pricing, without which a run's cost is unknown",
            check=_cost_budget_has_prices,
            field_path=".security.budgets",
        ),
    )

    agent: AgentSpec
    """The agent itself; required, there is no sensible default model."""
    replicas: int | None = Field(None, ge=0, le=1000)
    """Pods to run; omit for 1, or minReplicas when autoscaling (then autoscaling moves it)."""
    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec)
    """Replica bounds and targets for autoscaling."""
    concurrency: ConcurrencySpec = Field(default_factory=ConcurrencySpec)
    """Per-pod concurrency limit, queue and request timeout."""
    conversations: ConversationsSpec = Field(default_factory=ConversationsSpec)
    """History limits and time to live of multi-turn conversations."""
    protocols: list[Protocol] = Field(
        default_factory=lambda: list(DEFAULT_PROTOCOLS),
        max_length=3,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    """Client protocols served besides /v1 (`openai`, `a2a`, `ag-ui`); omitted: all of them, `[]`: none.
    A protocol not listed answers 404."""
    services: ServicesSpec = Field(default_factory=ServicesSpec)
    """Database, cache and external API."""
    security: SecuritySpec
    """Authentication, authorisation, rate limits, privacy and audit; required (security.auth must be chosen)."""
    health: HealthSpec = Field(default_factory=HealthSpec)
    """Health polling and restart policy."""
    observability: ObservabilitySpec = Field(default_factory=ObservabilitySpec)
    """OpenTelemetry tracing of requests, model and tool calls."""
    pod: PodSpec = Field(default_factory=PodSpec)
    """Pod settings: image, resources, scheduling, metadata."""

    def desired_replicas(self) -> int:
        """Replicas to run when nothing has scaled the agent yet."""
        if self.replicas is not None:
            return self.replicas
        return self.autoscaling.min_replicas if self.autoscaling.enabled else 1

    def secret_refs(self) -> list[tuple[str, SecretKeyRef]]:
        """Every Secret reference in the spec, with the field path that names it."""
        endpoint, services, security = self.agent.endpoint, self.services, self.security
        candidates: list[tuple[str, SecretKeyRef | None]] = [
            ("spec.agent.endpoint.apiKeySecretRef", endpoint.api_key_secret_ref if endpoint else None),
            ("spec.services.database.urlSecretRef", services.database.url_secret_ref if services.database else None),
            ("spec.services.cache.urlSecretRef", services.cache.url_secret_ref if services.cache else None),
            (
                "spec.services.externalAPI.apiKeySecretRef",
                services.external_api.api_key_secret_ref if services.external_api else None,
            ),
            ("spec.security.auth.secretRef", security.auth.secret_ref),
            ("spec.security.auth.publicKeySecretRef", security.auth.public_key_secret_ref),
            ("spec.security.privacy.hmacKeySecretRef", security.privacy.hmac_key_secret_ref),
            ("spec.observability.tracing.headersSecretRef", self.observability.tracing.headers_secret_ref),
        ]
        for index, toolset in enumerate(self.agent.toolsets or []):
            for number, header in enumerate(toolset.mcp.headers if toolset.mcp else []):
                candidates.append((f"spec.agent.toolsets[{index}].mcp.headers[{number}].secretRef", header.secret_ref))
        return [(path, ref) for path, ref in candidates if ref is not None]


# --- status ------------------------------------------------------------------------------------


class Condition(ApiModel):
    """A kstatus-style condition (metav1.Condition)."""

    type: str = Field(max_length=316)
    """Ready, Progressing, Degraded or Stalled."""
    status: Literal["True", "False", "Unknown"]
    """Whether the condition holds."""
    reason: str = Field(max_length=1024)
    """CamelCase word for the last transition."""
    message: str = Field("", max_length=32_768)
    """Human-readable details."""
    last_transition_time: datetime
    """When status last changed."""
    observed_generation: int | None = Field(None, ge=0)
    """Generation of the spec the condition was set from."""


class ScaleDecision(ApiModel):
    """The last scaling action the operator took, and why."""

    time: datetime
    """When the decision was made."""
    from_replicas: int = Field(ge=0, alias="from")
    """Replicas before."""
    to_replicas: int = Field(ge=0, alias="to")
    """Replicas after."""
    reason: str = Field(max_length=1024)
    """Why the operator scaled."""


class Endpoints(ApiModel):
    """In-cluster URLs of what the agent serves, from status.url and spec.protocols (agentry_api.endpoints).

    A protocol not served has no URL; `run` and `stream`, Agentry's own API, are always there.
    """

    run: str
    """`POST` a prompt, get the run's answer: `<url>/v1/run`."""
    stream: str
    """The same run streamed as Server-Sent Events: `<url>/v1/run/stream`."""
    openai: str | None = None
    """Base URL for OpenAI clients (`base_url`), `<url>/v1`: they POST `/chat/completions` under it."""
    a2a: str | None = Field(None, alias="a2a")
    """The A2A agent card, `<url>/.well-known/agent.json`; it names the JSON-RPC endpoint (`<url>/a2a`)."""
    ag_ui: str | None = Field(None, alias="agUI")
    """The AG-UI run endpoint, `<url>/v1/ag-ui`."""


class SpendStatus(ApiModel):
    """The agent's spend in the current budget period, from its pods' /health (agentry_api.health.Spend)."""

    period: str = Field(max_length=16)
    """`2026-12-02` (daily, the default) or `2026-12` (spec.security.budgets.period monthly), in UTC."""
    resets_at: datetime
    """When the next period starts."""
    tokens: int = Field(ge=0)
    """Model tokens (in plus out) spent in the period."""
    cost: float | None = None
    """Their cost in `currency` (agents with spec.agent.pricing)."""
    currency: str | None = None
    """ISO 4217 code of `cost`."""
    budget_percent: float | None = None
    """The highest percentage of spec.security.budgets.perAgent spent (tokens or cost); absent without one."""


class AgentDeploymentStatus(ApiModel):
    """The observed state of the agent, written by the operator."""

    model_config = ConfigDict(**{**ApiModel.model_config, "extra": "ignore"})

    observed_generation: int = 0
    """Generation of the spec the status describes; 0 until the operator has acted on one.

    The CRD defaults status to this (see `crdgen.STATUS_DEFAULT`), so a new agent reads as not yet observed.
    """
    replicas: int = 0
    """Pods that exist."""
    ready_replicas: int = 0
    """Pods that pass their readiness probe."""
    healthy_replicas: int = 0
    """Pods whose last health poll said healthy."""
    selector: str = ""
    """Label selector of the pods (for the scale subresource)."""
    url: str = ""
    """In-cluster URL of the agent's Service."""
    protocols: str = ""
    """Client protocols served besides /v1, comma-separated (`openai,a2a,ag-ui`); empty for none.

    In spec order; follows spec.protocols once the generation that names them is applied."""
    endpoints: Endpoints | None = None
    """The URL of each endpoint served, for clients and tools to read instead of building them."""
    conditions: list[Condition] = Field(
        [], json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}
    )
    """Ready, Progressing and Degraded; Stalled while a person must act."""
    last_health_check: datetime | None = None
    """When the operator last polled the pods."""
    restarts: int = 0
    """Pods the operator restarted because they stayed unhealthy."""
    degraded_pods: list[str] = []
    """Pods whose last poll said degraded, unhealthy or unreachable."""
    last_scale: ScaleDecision | None = None
    """The last scaling decision and its reason."""
    open_streams: int = 0
    """Streamed responses the agent's pods were sending at the last health poll, summed over the pods.

    Written with the other health fields, so at most a minute old while the health daemon runs."""
    spend: SpendStatus | None = None
    """The agent's spend this period (tokens, cost, share of its budget) at the last health poll: shared by the
    replicas with a Redis cache, the sum of the pods' own ledgers without one. Written with the other health
    fields, so at most a minute old."""
    active_conversations: int = 0
    """Unexpired conversations in the agent's database at the last health poll.

    With PostgreSQL the replicas share one count; with SQLite it is the sum of the pods' own. Written with the
    other health fields, so at most a minute old while the health daemon runs."""


class ObjectMeta(ApiModel):
    """The parts of metadata the runtime and the operator read."""

    model_config = ConfigDict(**{**ApiModel.model_config, "extra": "ignore"})

    name: str = Field("agent", max_length=52, pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    """Name of the AgentDeployment (a DNS-1035 label: it names the Service and the Deployment)."""
    namespace: str = Field("default", max_length=63)
    """Namespace of the AgentDeployment."""


class AgentDeployment(ApiModel):
    """A whole AgentDeployment object, as stored by the API server."""

    api_version: Literal["agentry.dev/v1alpha1"] = "agentry.dev/v1alpha1"
    """agentry.dev/v1alpha1."""
    kind: Literal["AgentDeployment"] = "AgentDeployment"
    """AgentDeployment."""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    """Name and namespace."""
    spec: AgentDeploymentSpec
    """Desired state."""
    status: AgentDeploymentStatus | None = None
    """Observed state."""
