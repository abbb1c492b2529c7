"""The table of bad AgentDeployment manifests and what a user must be told about each.

Shared by the offline checks (CRD schema + CEL, and the pydantic models) and by the same table run
against the real API server on the local control plane.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

BASE: dict[str, Any] = {
    "apiVersion": "agentry.dev/v1alpha1",
    "kind": "AgentDeployment",
    "metadata": {"name": "triage"},
    "spec": {
        "agent": {"model": "test", "instructions": "Triage tickets."},
        "security": {"auth": {"secretRef": {"name": "jwt", "key": "key"}}},
    },
}


@dataclass(frozen=True)
class BadManifest:
    """One bad manifest: how it differs from BASE, the field it must name, and the words to expect."""

    id: str
    changes: dict[str, Any]
    field: str
    message: str

    def manifest(self) -> dict[str, Any]:
        """BASE with the changes applied (a dotted path per change; None deletes)."""
        obj = copy.deepcopy(BASE)
        for dotted, value in self.changes.items():
            *parents, leaf = dotted.split(".")
            node = obj
            for part in parents:
                node = node.setdefault(part, {})
            if value is None:
                node.pop(leaf, None)
            else:
                node[leaf] = value
        return obj


BAD_MANIFESTS: tuple[BadManifest, ...] = (
    BadManifest("no-agent", {"spec.agent": None}, "spec.agent", "Required value"),
    BadManifest("no-model", {"spec.agent.model": None}, "spec.agent.model", "is required unless spec.agent.code"),
    BadManifest("model-without-provider", {"spec.agent.model": "gpt-4o"}, "spec.agent.model", "should match"),
    BadManifest("negative-replicas", {"spec.replicas": -1}, "spec.replicas", "greater than or equal to 0"),
    BadManifest(
        "autoscaling-min-above-max",
        {"spec.autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}},
        "spec.autoscaling.minReplicas",
        "must be less than or equal to spec.autoscaling.maxReplicas",
    ),
    BadManifest(
        "replicas-outside-autoscaling-range",
        {"spec.replicas": 20, "spec.autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 10}},
        "spec.replicas",
        "must lie between spec.autoscaling.minReplicas and maxReplicas",
    ),
    BadManifest(
        "hpa-without-cpu-target",
        {"spec.autoscaling": {"enabled": True, "provider": "HPA"}},
        "spec.autoscaling.targetCPUUtilizationPercent",
        "is required when spec.autoscaling.provider is HPA",
    ),
    BadManifest("no-security", {"spec.security": None}, "spec.security", "Required value"),
    BadManifest("no-auth", {"spec.security": {"audit": {"enabled": True}}}, "spec.security.auth", "Required value"),
    BadManifest(
        "jwt-without-key",
        {"spec.security.auth": {"mode": "jwt"}},
        "spec.security.auth",
        "mode jwt needs spec.security.auth.secretRef",
    ),
    BadManifest(
        "jwt-rs256-without-public-key",
        {"spec.security.auth.algorithms": ["RS256"]},
        "spec.security.auth",
        "publicKeySecretRef",
    ),
    BadManifest(
        "jwt-mixed-algorithm-families",
        {"spec.security.auth.algorithms": ["HS256", "RS256"]},
        "spec.security.auth.algorithms",
        "must not mix HMAC",
    ),
    BadManifest(
        "jwt-alg-none", {"spec.security.auth.algorithms": ["none"]}, "spec.security.auth.algorithms[0]", "none"
    ),
    BadManifest(
        "token-lifetime-under-an-hour",
        {"spec.security.auth.maxTokenLifetimeSeconds": 3599},
        "spec.security.auth.maxTokenLifetimeSeconds",
        "greater than or equal to 3600",
    ),
    BadManifest(
        "token-lifetime-over-a-week",
        {"spec.security.auth.maxTokenLifetimeSeconds": 604_801},
        "spec.security.auth.maxTokenLifetimeSeconds",
        "less than or equal to 604800",
    ),
    BadManifest(
        "metrics-require-auth-not-a-boolean",
        {"spec.security.metrics.requireAuth": "please"},
        "spec.security.metrics.requireAuth",
        "boolean",
    ),
    BadManifest(
        "output-schema-not-object",
        {"spec.agent.outputSchema": {"type": "array", "items": {"type": "string"}}},
        "spec.agent.outputSchema",
        "must be a JSON Schema whose type is 'object'",
    ),
    BadManifest(
        "endpoint-with-non-openai-model",
        {"spec.agent.model": "anthropic:claude-sonnet-4-5", "spec.agent.endpoint": {"baseURL": "http://llm:8000/v1"}},
        "spec.agent.model",
        "needs an OpenAI-compatible spec.agent.model",
    ),
    BadManifest(
        "endpoint-not-http",
        {"spec.agent.model": "ollama:llama3", "spec.agent.endpoint": {"baseURL": "ftp://llm/v1"}},
        "spec.agent.endpoint.baseURL",
        "should match",
    ),
    BadManifest(
        "zero-concurrency",
        {"spec.concurrency": {"maxConcurrentRequests": 0}},
        "spec.concurrency.maxConcurrentRequests",
        "greater than or equal to 1",
    ),
    BadManifest(
        "zero-request-timeout",
        {"spec.concurrency": {"requestTimeoutSeconds": 0}},
        "spec.concurrency.requestTimeoutSeconds",
        "greater than 0",
    ),
    BadManifest(
        "conversation-of-one-message",
        {"spec.conversations": {"maxMessages": 1}},
        "spec.conversations.maxMessages",
        "greater than or equal to 2",
    ),
    BadManifest("unknown-field", {"spec.agent.temperature": 0.5}, "spec.agent.temperature", "unknown field"),
    BadManifest(
        "hmac-privacy-without-key",
        {"spec.security.privacy": {"mode": "hmac"}},
        "spec.security.privacy.hmacKeySecretRef",
        "is required when spec.security.privacy.mode is hmac",
    ),
    BadManifest(
        "secret-name-not-dns",
        {"spec.security.auth.secretRef": {"name": "JWT_Secret", "key": "key"}},
        "spec.security.auth.secretRef.name",
        "should match",
    ),
    BadManifest(
        "unknown-role",
        {"spec.security.authorization": {"allowedRoles": ["superuser"]}},
        "spec.security.authorization.allowedRoles[0]",
        "superuser",
    ),
    BadManifest(
        "poll-interval-too-short",
        {"spec.health": {"pollIntervalSeconds": 1}},
        "spec.health.pollIntervalSeconds",
        "greater than or equal to 2",
    ),
    BadManifest(
        "rate-limit-not-a-number",
        {"spec.security.rateLimit": {"requestsPerMinute": "fast"}},
        "spec.security.rateLimit.requestsPerMinute",
        "integer",
    ),
    BadManifest(
        "temperature-too-high",
        {"spec.agent.modelSettings": {"temperature": 3}},
        "spec.agent.modelSettings.temperature",
        "less than or equal to 2",
    ),
    BadManifest("name-not-dns-label", {"metadata.name": "Support_Triage"}, "metadata.name", "DNS-1035 label"),
    BadManifest(
        "code-entrypoint-without-attribute",
        {"spec.agent.code": {"entrypoint": "support_bot.agent"}, "spec.pod.image": "example/bot:1"},
        "spec.agent.code.entrypoint",
        "should match",
    ),
    BadManifest(
        "code-with-instructions",
        {"spec.agent.code": {"entrypoint": "support_bot.agent:agent"}, "spec.pod.image": "example/bot:1"},
        "spec.agent.instructions",
        "does not apply with spec.agent.code",
    ),
    BadManifest(
        "code-without-image",
        {"spec.agent.code": {"entrypoint": "support_bot.agent:agent"}, "spec.agent.instructions": None},
        "spec.pod",
        "spec.pod.image is required with spec.agent.code",
    ),
    BadManifest(
        "toolset-builtin-and-mcp",
        {"spec.agent.toolsets": [{"name": "t", "builtin": {}, "mcp": {"url": "http://mcp:8000/mcp"}}]},
        "spec.agent.toolsets[0]",
        "set exactly one of builtin and mcp",
    ),
    BadManifest(
        "toolset-names-repeated",
        {"spec.agent.toolsets": [{"name": "t", "builtin": {}}, {"name": "t", "mcp": {"url": "http://mcp/mcp"}}]},
        "spec.agent.toolsets",
        "each toolset name must be unique",
    ),
    BadManifest(
        "toolset-unknown-builtin-tool",
        {"spec.agent.toolsets": [{"name": "t", "builtin": {"tools": ["rm_rf"]}}]},
        "spec.agent.toolsets[0].builtin.tools[0]",
        "rm_rf",
    ),
    BadManifest(
        "approval-of-a-tool-the-builtin-toolset-lacks",
        {"spec.agent.toolsets": [{"name": "t", "builtin": {"tools": ["cache_get"]}, "requireApproval": ["cache_set"]}]},
        "spec.agent.toolsets[0]",
        "name only tools this built-in toolset offers",
    ),
    BadManifest(
        "approval-of-an-unknown-builtin-tool",
        {"spec.agent.toolsets": [{"name": "t", "builtin": {}, "requireApproval": ["rm_rf"]}]},
        "spec.agent.toolsets[0]",
        "name only tools this built-in toolset offers",
    ),
    BadManifest(
        "mcp-url-not-http",
        {"spec.agent.toolsets": [{"name": "t", "mcp": {"url": "stdio://tool"}}]},
        "spec.agent.toolsets[0].mcp.url",
        "should match",
    ),
    BadManifest(
        "mcp-forwarded-token-without-auth",
        {
            "spec.security": {"auth": {"mode": "none"}},
            "spec.agent.toolsets": [{"name": "t", "mcp": {"url": "http://mcp:8000/mcp", "forwardBearerToken": True}}],
        },
        "spec.agent.toolsets",
        "forwardBearerToken needs spec.security.auth.mode jwt",
    ),
    BadManifest(
        "mcp-forwarded-token-and-authorization-header",
        {
            "spec.agent.toolsets": [
                {
                    "name": "t",
                    "mcp": {
                        "url": "http://mcp:8000/mcp",
                        "forwardBearerToken": True,
                        "headers": [{"name": "Authorization", "secretRef": {"name": "mcp", "key": "token"}}],
                    },
                }
            ]
        },
        "spec.agent.toolsets[0].mcp",
        "no Authorization header when forwardBearerToken is true",
    ),
    BadManifest(
        "cost-budget-without-pricing",
        {"spec.security.budgets": {"perAgent": {"cost": 10}}},
        "spec.security.budgets",
        "a cost budget (perPrincipal.cost or perAgent.cost) needs spec.agent.pricing",
    ),
    BadManifest(
        "empty-principal-budget",
        {"spec.security.budgets": {"perPrincipal": {}}},
        "spec.security.budgets.perPrincipal",
        "needs tokens, cost or both",
    ),
    BadManifest(
        "budget-period-unknown",
        {"spec.security.budgets": {"period": "weekly", "perAgent": {"tokens": 10}}},
        "spec.security.budgets.period",
        "supported values",
    ),
    BadManifest(
        "budget-zero-tokens",
        {"spec.security.budgets": {"perAgent": {"tokens": 0}}},
        "spec.security.budgets.perAgent.tokens",
        "greater than or equal to 1",
    ),
)
