"""Pytest plugin: a real local Kubernetes control plane for the session, and a fresh namespace for each test."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from agentry_dev.cluster.cluster import Cluster, ClusterError
from agentry_dev.cluster.network import pod_cidr

T = TypeVar("T")


class KubectlError(AssertionError):
    """A kubectl or helm call failed; the message has its arguments and stderr."""


@dataclass(frozen=True)
class KubeCluster:
    """What a test needs to drive the session's cluster from the outside, as a user would."""

    name: str
    server: str
    kubeconfig: Path
    kubectl_path: Path
    helm_path: Path
    pod_network: ipaddress.IPv4Network
    """KWOK gives every pod an IP in here (a loopback range of this cluster's own)."""

    @property
    def env(self) -> dict[str, str]:
        """Environment for a child process that should talk to this cluster with kubectl or helm."""
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.kubectl_path.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def _run(
        self, binary: Path, args: tuple[str, ...], *, stdin: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(binary), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise KubectlError(f"{binary.name} {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
        return done

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; raises KubectlError with stderr on failure unless `check=False`."""
        return self._run(self.kubectl_path, args, stdin=stdin, check=check, timeout=timeout)

    def helm(self, *args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run helm against this cluster, like `kubectl`."""
        return self._run(self.helm_path, args, stdin=None, check=check, timeout=timeout)


def eventually(
    probe: Callable[[], T | None],
    *,
    timeout: float = 30.0,
    what: str = "condition",
    context: Callable[[], str] | None = None,
    interval: float = 0.2,
) -> T:
    """Poll `probe` until it returns something truthy and return that; fail the test after `timeout` seconds.

    `context` adds to the failure message (an operator's log tail, say), read only when the wait fails.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            extra = f"\n{context()}" if context is not None else ""
            pytest.fail(f"timed out after {timeout} s waiting for {what}{extra}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[KubeCluster]:
    """A dedicated cluster for this test session (`pytest-<pid>`), stopped at the end.

    A cluster that cannot start fails the tests that use it, with the tail of the failing component's log;
    nothing is skipped.
    """
    try:
        cluster = Cluster.up(f"pytest-{os.getpid()}")
    except (ClusterError, RuntimeError) as error:
        pytest.fail(f"the local control plane did not start: {error}", pytrace=False)
    try:
        yield KubeCluster(
            name=cluster.name,
            server=cluster.server,
            kubeconfig=cluster.kubeconfig,
            kubectl_path=cluster.bin_dir / "kubectl",
            helm_path=cluster.bin_dir / "helm",
            pod_network=ipaddress.IPv4Network(pod_cidr(cluster.layout.octet)),
        )
    finally:
        cluster.down(purge=True)


def _namespace_name(test_name: str) -> str:
    stem = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"{stem}-{secrets.token_hex(3)}"


@pytest.fixture
def kube_namespace(kube_cluster: KubeCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new namespace named after the test, with its default ServiceAccount ready; deleted afterwards."""
    name = _namespace_name(request.node.name)
    kube_cluster.kubectl("create", "namespace", name)
    eventually(
        lambda: kube_cluster.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
        what=f"the default ServiceAccount of {name}",
    )
    yield name
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def install_crd(cluster: KubeCluster, manifest: str, name: str) -> None:
    """Apply a CRD (server-side) and wait until the API server serves it.

    `kubectl wait --for=condition=Established` fails outright when it runs before the API server has written
    any condition, and so does a jsonpath filter over the missing list: the wait polls and ignores those errors.
    """
    cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "--field-manager=agentry-tests", "-f", "-", stdin=manifest
    )
    jsonpath = '{.status.conditions[?(@.type=="Established")].status}'
    eventually(
        lambda: cluster.kubectl("get", f"crd/{name}", "-o", f"jsonpath={jsonpath}", check=False).stdout == "True",
        what=f"CRD {name} to be Established",
    )


@pytest.fixture(scope="session")
def agentry_crd(kube_cluster: KubeCluster) -> KubeCluster:
    """The cluster with the AgentDeployment CRD generated from the models installed."""
    from agentry_api import v1alpha1 as api
    from agentry_api.crdgen import render_crd

    install_crd(kube_cluster, render_crd(), f"{api.PLURAL}.{api.GROUP}")
    return kube_cluster
