"""The same table of bad manifests, refused by the real API server with messages that name the field."""

from __future__ import annotations

import pytest
import yaml

from tests.kube import KubeCluster

from .bad_manifests import BAD_MANIFESTS
from .test_crd import agent_examples

pytestmark = pytest.mark.cluster


@pytest.fixture
def crd_installed(agentry_crd: KubeCluster) -> KubeCluster:
    return agentry_crd


def _dry_run(cluster: KubeCluster, namespace: str, manifest: dict[str, object]) -> tuple[int, str]:
    done = cluster.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(manifest), check=False
    )
    return done.returncode, done.stderr


def test_api_server_refuses_every_bad_manifest(crd_installed: KubeCluster, kube_namespace: str) -> None:
    misses = []
    for case in BAD_MANIFESTS:
        code, stderr = _dry_run(crd_installed, kube_namespace, case.manifest())
        if code == 0 or case.field not in stderr or case.message not in stderr:
            misses.append(f"{case.id}: exit {code}: {stderr.strip()}")
    assert not misses, "\n".join(misses)


def test_api_server_accepts_every_example(crd_installed: KubeCluster, kube_namespace: str) -> None:
    for label, doc in agent_examples():
        doc["metadata"].pop("namespace", None)
        code, stderr = _dry_run(crd_installed, kube_namespace, doc)
        assert code == 0, f"{label}: {stderr}"
