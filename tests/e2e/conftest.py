"""The end-to-end tier: Agentry's own images in real pods on a real kubelet, installed with its Helm chart.

One cluster with a real node for this package (`e2e-<pid>`), started by this fixture and stopped after the
package's last test (not kept running under the rest of the session), so the tier needs nothing running
beforehand; it needs root and the Debian packages `.ci/bootstrap` installs.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentry_dev import deploy
from agentry_dev.cluster import hostnode
from agentry_dev.cluster.cluster import Cluster, ClusterError
from agentry_dev.deploy import LocalImages
from tests.kube import KubeCluster, eventually


@dataclass(frozen=True)
class NodeCluster:
    """The session's real-node cluster, the images it runs and the chart's release."""

    kube: KubeCluster
    cluster: Cluster
    images: LocalImages

    def json(self, *args: str) -> dict[str, Any]:
        """`kubectl get ... -o json`, parsed."""
        found: dict[str, Any] = json.loads(self.kube.kubectl("get", *args, "-o", "json").stdout)
        return found


def host_state() -> dict[str, Any]:
    """What a real node may touch on the host: sysctls, interfaces, rules, mounts, cgroups, fixed host folders."""
    links = sorted(p.name for p in Path("/sys/class/net").iterdir())
    rules = []
    for tool in ("iptables-save", "ip6tables-save"):
        saved = subprocess.run([tool], capture_output=True, text=True, check=False).stdout
        rules += [line for line in saved.splitlines() if line.startswith("-")]
    mounts = sorted(line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines())
    cgroups = sorted(str(p) for h in hostnode.hierarchies() for p in h.iterdir() if p.is_dir())
    return {
        "sysctls": hostnode.read_sysctls(),
        "links": links,
        "rules": sorted(rules),
        "mounts": mounts,
        "cgroups": cgroups,
        "routes": subprocess.run(["ip", "route"], capture_output=True, text=True, check=False).stdout,
        "host folders": [str(p) for p in hostnode.HOST_FOLDERS if p.exists()],
    }


@pytest.fixture(scope="package")
def node_cluster() -> Iterator[NodeCluster]:
    """Images built (cached by content), a cluster with a real node, the chart installed with those images.

    After the package's tests the cluster goes down, and the host must be exactly as before: no kernel setting,
    interface, route, firewall rule, mount or cgroup left behind (a difference fails the fixture's teardown).
    """
    try:
        images = deploy.build_images()
    except RuntimeError as error:
        pytest.fail(f"Agentry's images did not build: {error}", pytrace=False)
    before = host_state()
    try:
        cluster = deploy.start_cluster(f"e2e-{os.getpid()}", images)
    except (ClusterError, RuntimeError) as error:
        pytest.fail(f"the real node did not start: {error}", pytrace=False)
    try:
        images = deploy.install(cluster)
        yield NodeCluster(
            kube=KubeCluster(
                name=cluster.name,
                server=cluster.server,
                kubeconfig=cluster.kubeconfig,
                kubectl_path=cluster.bin_dir / "kubectl",
                helm_path=cluster.bin_dir / "helm",
                pod_network=ipaddress.IPv4Network(cluster.layout.node_subnet),
            ),
            cluster=cluster,
            images=images,
        )
    finally:
        cluster.down(purge=True)
    after = host_state()
    changed = {key: (before[key], after[key]) for key in before if before[key] != after[key]}
    assert not changed, f"the real node left the host changed: {changed}"


@pytest.fixture
def namespace(node_cluster: NodeCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (its pods are stopped by the kubelet)."""
    name = f"e2e-{request.node.name[5:30].lower().replace('_', '-').strip('-')}-{secrets.token_hex(2)}"
    node_cluster.kube.kubectl("create", "namespace", name)
    eventually(
        lambda: node_cluster.kube.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
        what=f"the default ServiceAccount of {name}",
    )
    yield name
    node_cluster.kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


def apply_agent(node_cluster: NodeCluster, namespace: str, name: str, **spec: Any) -> str:
    """Create the agent's JWT Secret and the AgentDeployment; returns the signing key."""
    key = secrets.token_hex(32)
    node_cluster.kube.kubectl(
        "create", "secret", "generic", f"{name}-jwt", "-n", namespace, f"--from-literal=key={key}"
    )
    body = {
        "agent": {"model": "test", "instructions": "You answer questions about Agentry."},
        "security": {"auth": {"secretRef": {"name": f"{name}-jwt", "key": "key"}}},
        **spec,
    }
    manifest = {
        "apiVersion": "agentry.dev/v1alpha1",
        "kind": "AgentDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }
    node_cluster.kube.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(manifest))
    return key
