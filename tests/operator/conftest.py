"""The operator tier's cluster fixtures: a real operator process per test and kubectl as a user drives it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kube import KubeCluster
from tests.support.operator import OperatorProcess

from .running import Agents


@pytest.fixture(scope="module")
def crd(agentry_crd: KubeCluster) -> KubeCluster:
    return agentry_crd


@pytest.fixture
def operator(crd: KubeCluster, kube_namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    process = OperatorProcess(kubeconfig=crd.kubeconfig, namespaces=(kube_namespace,), log=tmp_path / "operator.log")
    process.start()
    yield process
    assert process.stop() == 0, process.tail()
    assert "Traceback" not in process.log.read_text(), process.tail(200)


@pytest.fixture
def agents(crd: KubeCluster, kube_namespace: str, operator: OperatorProcess) -> Agents:
    return Agents(crd, kube_namespace, operator)
