"""Generate the AgentDeployment CRD from the pydantic models (`agentry crd`)."""

from __future__ import annotations

from typing import Any

import yaml

from . import v1alpha1 as api
from .schema import CrdJsonSchema, structural_schema

CRD_FILENAME = f"{api.GROUP}_{api.PLURAL}.yaml"
HEADER = "# Generated from agentry_api/v1alpha1.py by `agentry crd`; do not edit by hand.\n"

#: Root-level rules: only metadata.name may be read at the root of a CRD schema.
NAME_RULE = {
    "rule": "self.metadata.name.size() <= 52 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
    "message": "metadata.name must be a DNS-1035 label of at most 52 characters "
    "(lowercase letters, digits and '-', starting with a letter): it names the agent's Service and Deployment",
}

#: What the API server shows as status until the operator writes one. It fills defaults in on every read
#: from etcd (GET, LIST, watch), status subresource or not, so a brand-new agent has observedGeneration 0
#: below metadata.generation 1: kstatus (Flux) reads that as InProgress, not Current, while no operator has
#: acted on it, and Argo CD's health check as Progressing. The other status fields' own defaults follow.
STATUS_DEFAULT: dict[str, Any] = {"observedGeneration": 0}

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Model",
        "type": "string",
        "jsonPath": ".spec.agent.model",
        "description": "Model string (for a code agent, the override of its own model)",
    },
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        "description": "Whether the agent serves requests",
    },
    {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas", "description": "Pods that exist"},
    {
        "name": "Healthy",
        "type": "integer",
        "jsonPath": ".status.healthyReplicas",
        "description": "Pods whose last health poll said healthy",
    },
    {"name": "URL", "type": "string", "jsonPath": ".status.url", "description": "In-cluster URL"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "Reason",
        "type": "string",
        "priority": 1,
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
        "description": "Why the agent is or is not ready",
    },
    {
        "name": "Code",
        "type": "string",
        "priority": 1,
        "jsonPath": ".spec.agent.code.entrypoint",
        "description": "Entrypoint of the user's own agent (code mode)",
    },
    {
        "name": "Protocols",
        "type": "string",
        "priority": 1,
        "jsonPath": ".status.protocols",
        "description": "Client protocols served besides Agentry's own /v1 API",
    },
    {
        "name": "Streams",
        "type": "integer",
        "priority": 1,
        "jsonPath": ".status.openStreams",
        "description": "Streamed responses being sent at the last health poll",
    },
    {
        "name": "Conversations",
        "type": "integer",
        "priority": 1,
        "jsonPath": ".status.activeConversations",
        "description": "Unexpired conversations at the last health poll",
    },
    {
        "name": "Tokens",
        "type": "integer",
        "priority": 1,
        "jsonPath": ".status.spend.tokens",
        "description": "Model tokens spent in the current budget period (today, UTC, unless budgets are monthly)",
    },
    {
        "name": "Budget",
        "type": "number",
        "priority": 1,
        "jsonPath": ".status.spend.budgetPercent",
        "description": "Highest percentage of the agent's own budgets spent this period",
    },
]


def openapi_schema() -> dict[str, Any]:
    """The openAPIV3Schema of the CRD: the AgentDeployment model, metadata left to the API server."""
    schema = structural_schema(
        api.AgentDeployment.model_json_schema(by_alias=True, mode="validation", schema_generator=CrdJsonSchema)
    )
    properties = schema["properties"]
    properties["apiVersion"] = {"type": "string", "description": "agentry.dev/v1alpha1"}
    properties["kind"] = {"type": "string", "description": "AgentDeployment"}
    properties["metadata"] = {"type": "object"}
    properties["status"]["default"] = dict(STATUS_DEFAULT)
    schema["required"] = ["spec"]
    schema["x-kubernetes-validations"] = [NAME_RULE]
    return schema


def crd() -> dict[str, Any]:
    """The whole CustomResourceDefinition object."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{api.PLURAL}.{api.GROUP}",
            "labels": {"app.kubernetes.io/name": "agentry", "app.kubernetes.io/part-of": "agentry"},
        },
        "spec": {
            "group": api.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": api.KIND,
                "listKind": f"{api.KIND}List",
                "plural": api.PLURAL,
                "singular": api.SINGULAR,
                "shortNames": list(api.SHORT_NAMES),
                "categories": list(api.CATEGORIES),
            },
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                }
            ],
        },
    }


def render_crd() -> str:
    """The CRD as the YAML text committed in crds/ (deterministic, so a diff means a change)."""
    return HEADER + yaml.safe_dump(crd(), sort_keys=False, width=120, allow_unicode=True)
