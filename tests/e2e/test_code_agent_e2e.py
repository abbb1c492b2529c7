"""The user's own agent on the real node: examples/code-agent's image built FROM the local runtime, deployed, called."""

from __future__ import annotations

import json
import re
import secrets
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent_runtime.security.tokens import mint_token
from agentry_dev.images.build import Planned, ensure_project_image
from tests.e2e.conftest import NodeCluster
from tests.e2e.test_node_e2e import _exec, _pods, _service_ip, _wait_ready

pytestmark = [pytest.mark.node, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "code-agent"
NAME = "support-bot"


@pytest.fixture(scope="module")
def example_image(node_cluster: NodeCluster) -> Planned:
    """The example's image on the runtime the chart runs, imported into the node (cached by content)."""
    return ensure_project_image(
        EXAMPLE,
        name=NAME,
        images=list(node_cluster.images.items),
        import_to=str(node_cluster.cluster.layout.containerd_socket),
    )


def _apply_example(node_cluster: NodeCluster, namespace: str, image: Planned) -> str:
    """The example's own manifest, offline (the `test` model, no status API) on the local image; returns the JWT key.

    The `test` model calls every tool of the agent once, so one run shows that the user's tools run in the pod.
    """
    manifest: dict[str, Any] = yaml.safe_load((EXAMPLE / "agent.yaml").read_text())
    spec = manifest["spec"]
    spec["agent"]["model"] = "test"
    del spec["agent"]["endpoint"], spec["services"]
    spec["pod"] |= {"image": image.image.ref, "imagePullPolicy": "Never"}
    manifest["metadata"]["namespace"] = namespace
    key = secrets.token_hex(32)
    secret = spec["security"]["auth"]["secretRef"]
    node_cluster.kube.kubectl(
        "create", "secret", "generic", secret["name"], "-n", namespace, f"--from-literal={secret['key']}={key}"
    )
    node_cluster.kube.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(manifest))
    return key


def _run(url: str, token: str, prompt: str) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps({"prompt": prompt}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        body: dict[str, Any] = json.loads(answer.read())
        return body


def test_the_users_agent_runs_in_its_image_and_its_tool_keeps_the_ticket(
    node_cluster: NodeCluster, namespace: str, example_image: Planned
) -> None:
    key = _apply_example(node_cluster, namespace, example_image)
    _wait_ready(node_cluster, namespace, NAME, timeout=180)
    [pod] = _pods(node_cluster, namespace, NAME)
    assert pod["spec"]["containers"][0]["image"] == example_image.image.ref

    token = mint_token(key=key, subject="e2e-user", roles=["agent_operator"], audience="support")
    body = _run(f"http://{_service_ip(node_cluster, namespace, NAME)}:8080/v1/run", token, "My printer is on fire")
    returned = json.loads(body["output"])
    ticket = returned["file_ticket"]
    assert re.fullmatch(r"T-[0-9a-f]{8}", ticket["id"]) and ticket["reporter"] == "e2e-user", returned
    assert returned["service_status"] == "unknown: no status API is configured"

    stored = _exec(
        node_cluster,
        namespace,
        pod["metadata"]["name"],
        "import sqlite3; print(dict(sqlite3.connect('/var/lib/agentry/agentry.db')"
        ".execute(\"SELECT key, value FROM agent_records WHERE collection = 'tickets'\").fetchall()))",
    )
    assert stored.returncode == 0, stored.stderr
    assert ticket["id"] in stored.stdout and "e2e-user" in stored.stdout, stored.stdout
