"""The RBAC-refusal detector used on the operator's log counts RBAC refusals and nothing else."""

from __future__ import annotations

from pathlib import Path

from tests.helm.operatorkit import forbidden_lines

REFUSED = (
    'ApplyFailed: ServiceAccount a/b: serviceaccounts "b" is forbidden: User "system:serviceaccount:x:agentry" '
    'cannot create resource "serviceaccounts" in API group "" in the namespace "a"'
)
KOPF_WARNING = "Not enough permissions to watch for resources: changes will not be noticed"
TERMINATING = (
    "POST .../events failed: forbidden: unable to create new content in namespace x because it is being terminated"
)


def test_rbac_refusals_are_found_and_terminating_namespaces_are_not(tmp_path: Path) -> None:
    log = tmp_path / "operator.log"
    log.write_text("\n".join(["all fine", REFUSED, KOPF_WARNING, TERMINATING]) + "\n")
    assert forbidden_lines(log) == [REFUSED, KOPF_WARNING]
