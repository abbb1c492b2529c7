from __future__ import annotations

import pytest

from agent_runtime.security.permissions import Permission, authorize, permissions_of
from agent_runtime.security.principal import AuthError, Principal

ALL = ["admin", "agent_operator", "data_analyst", "read_only"]
P = Permission

TABLE = {
    "admin": set(Permission),
    "agent_operator": {P.RUN, P.READ_RESULTS},
    "data_analyst": {P.READ_RESULTS, P.READ_METRICS},
    "read_only": {P.READ_RESULTS},
}


def who(*roles: str) -> Principal:
    return Principal(subject="alice", roles=frozenset(roles))


@pytest.mark.parametrize("role", ALL)
@pytest.mark.parametrize("permission", list(Permission))
def test_role_table(role: str, permission: Permission) -> None:
    if permission in TABLE[role]:
        authorize(who(role), permission, allowed_roles=ALL)
    else:
        with pytest.raises(AuthError) as caught:
            authorize(who(role), permission, allowed_roles=ALL)
        assert caught.value.status_code == 403
        assert f"permission '{permission}' is required" in caught.value.message


def test_a_role_the_agent_does_not_admit_grants_nothing() -> None:
    with pytest.raises(AuthError, match=r"none of the roles this agent admits \(agent_operator\)") as caught:
        authorize(who("admin"), P.RUN, allowed_roles=["agent_operator"])
    assert caught.value.status_code == 403


@pytest.mark.parametrize("roles", [(), ("superuser",), ("ADMIN",)])
def test_missing_or_unknown_roles_are_refused(roles: tuple[str, ...]) -> None:
    with pytest.raises(AuthError, match="none of the roles") as caught:
        authorize(who(*roles), P.READ_RESULTS, allowed_roles=ALL)
    assert caught.value.status_code == 403


def test_message_names_the_admitted_roles_that_would_grant_it() -> None:
    with pytest.raises(AuthError, match="granted by role admin or agent_operator"):
        authorize(who("read_only"), P.RUN, allowed_roles=ALL)
    with pytest.raises(AuthError, match="no admitted role grants it"):
        authorize(who("read_only"), P.RUN, allowed_roles=["read_only", "data_analyst"])


def test_roles_combine() -> None:
    assert permissions_of(["read_only", "data_analyst", "nobody"]) == {P.READ_RESULTS, P.READ_METRICS}
    authorize(who("read_only", "agent_operator"), P.RUN, allowed_roles=ALL)
