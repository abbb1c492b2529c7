"""What only the operator can judge before it applies anything: Secrets, schema, provider, who holds a name.

Pure functions: the Secrets are gathered by the apply layer and passed in as key sets, so each verdict is
testable without a cluster. Each problem carries the reason that ends up on the Ready condition.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

from agent_operator.render.ownership import Owner, conflict_of
from agentry_api.outputschema import output_schema_problem
from agentry_api.v1alpha1 import AgentDeployment

SECRET_NOT_FOUND = "SecretNotFound"
INVALID_OUTPUT_SCHEMA = "InvalidOutputSchema"
UNKNOWN_MODEL_PROVIDER = "UnknownModelProvider"
RESOURCE_CONFLICT = "ResourceConflict"


@dataclass(frozen=True, kw_only=True)
class Problem:
    """Why the agent cannot run as specified; the reason is a CamelCase word, the message names the field."""

    reason: str
    message: str


def check_spec(agent: AgentDeployment) -> Problem | None:
    """Problems of the spec alone (no cluster state needed): output schema first, then the provider."""
    return check_output_schema(agent) or check_provider(agent)


def check_output_schema(agent: AgentDeployment) -> Problem | None:
    """The output schema must be one the runtime accepts: the contract's check, the runtime's own at start-up."""
    schema = agent.spec.agent.output_schema
    problem = None if schema is None else output_schema_problem(schema)
    return None if problem is None else Problem(reason=INVALID_OUTPUT_SCHEMA, message=problem)


def check_provider(agent: AgentDeployment) -> Problem | None:
    """The provider part of the model string must be one pydantic-ai knows (`test` always is).

    A code agent without `model` names its model in its code: only the runtime can judge it, at start-up.
    """
    provider = agent.spec.agent.provider
    if provider is None or provider == "test" or known_provider(provider):
        return None
    return Problem(
        reason=UNKNOWN_MODEL_PROVIDER,
        message=f"spec.agent.model: unknown model provider {provider!r} in {agent.spec.agent.model!r}",
    )


@functools.cache
def known_provider(provider: str) -> bool:
    """Whether pydantic-ai knows the provider.

    An unknown name raises ValueError; a known one whose SDK is not installed here raises ImportError and
    still counts as known (the runtime image decides which SDKs it carries).
    """
    from pydantic_ai.providers import infer_provider_class

    try:
        infer_provider_class(provider)
    except ValueError:
        return False
    except ImportError:
        return True
    return True


def check_secrets(agent: AgentDeployment, *, secrets: Mapping[str, Set[str] | None]) -> Problem | None:
    """Every referenced Secret must exist and hold the key; `secrets` maps a name to its keys, None if absent."""
    missing = []
    for path, ref in agent.spec.secret_refs():
        keys = secrets.get(ref.name)
        if keys is None:
            missing.append(f"{path}: Secret {ref.name!r} not found")
        elif ref.key not in keys:
            missing.append(f"{path}: Secret {ref.name!r} has no key {ref.key!r}")
    if not missing:
        return None
    namespace = agent.metadata.namespace
    return Problem(reason=SECRET_NOT_FOUND, message=f"in namespace {namespace}: " + "; ".join(missing))


def check_ownership(stored: Sequence[tuple[str, Mapping[str, Any] | None]], *, owner: Owner) -> Problem | None:
    """No child may be written over an object the agent does not hold; `stored` pairs each kind with what exists.

    All conflicts are named at once, so one look at the condition tells the user everything to rename.
    """
    conflicts = [c for kind, obj in stored if (c := conflict_of(kind, obj, owner=owner)) is not None]
    if not conflicts:
        return None
    return Problem(reason=RESOURCE_CONFLICT, message="; ".join(c.message() for c in conflicts))
