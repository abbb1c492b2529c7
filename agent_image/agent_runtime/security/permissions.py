"""What each role may do, and the check every endpoint makes before it acts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType

from .principal import AuthError, Principal


class Permission(StrEnum):
    """An action on an agent; each guarded endpoint needs exactly one.

    /health, /healthz and /readyz need none: the operator and the kubelet poll them without a token.
    """

    RUN = "run"
    """Run the agent (POST /v1/run, /v1/run/batch), read and delete one's own conversations (/v1/conversations)."""
    READ_RESULTS = "read_results"
    """Read stored run results (GET /v1/results/{id})."""
    READ_METRICS = "read_metrics"
    """Read Prometheus metrics (GET /metrics), when spec.security.metrics.requireAuth is on."""


#: The fixed role table; the AgentDeployment only chooses which roles are admitted.
ROLE_PERMISSIONS: Mapping[str, frozenset[Permission]] = MappingProxyType(
    {
        "admin": frozenset(Permission),
        "agent_operator": frozenset({Permission.RUN, Permission.READ_RESULTS}),
        "data_analyst": frozenset({Permission.READ_RESULTS, Permission.READ_METRICS}),
        "read_only": frozenset({Permission.READ_RESULTS}),
    }
)


def effective_roles(principal: Principal, *, allowed_roles: Iterable[str]) -> frozenset[str]:
    """The principal's roles that the agent admits and the runtime knows."""
    return principal.roles & frozenset(allowed_roles) & ROLE_PERMISSIONS.keys()


def permissions_of(roles: Iterable[str]) -> frozenset[Permission]:
    """Union of the permissions of known roles; unknown names grant nothing."""
    granted: set[Permission] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS.get(role, frozenset())
    return frozenset(granted)


def roles_granting(permission: Permission) -> tuple[str, ...]:
    """Roles whose permissions include `permission`, in table order (for messages)."""
    return tuple(role for role, granted in ROLE_PERMISSIONS.items() if permission in granted)


def authorize(principal: Principal, permission: Permission, *, allowed_roles: Iterable[str]) -> None:
    """Return when the principal may do `permission` here; AuthError(403) naming what is missing.

    Two distinct refusals: the caller holds no role this agent admits at all, or it holds admitted
    roles of which none grants the permission.
    """
    allowed = tuple(allowed_roles)
    roles = effective_roles(principal, allowed_roles=allowed)
    if not roles:
        raise AuthError(403, f"caller has none of the roles this agent admits ({', '.join(allowed)})")
    if permission not in permissions_of(roles):
        granting = [role for role in roles_granting(permission) if role in allowed]
        hint = f"granted by role {' or '.join(granting)}" if granting else "no admitted role grants it"
        raise AuthError(403, f"permission '{permission}' is required ({hint})")
