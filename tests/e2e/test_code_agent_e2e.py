"""The user's own agent on the real node: examples/code-agent's image built FROM the local runtime, deployed, called."""

from __future__ import annotations

import json
import re
import secrets
import socket
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agent_runtime.security.tokens import mint_token
from agentry_dev.images.build import Planned, ensure_project_image
from tests.e2e.conftest import NodeCluster
from tests.e2e.test_node_e2e import _exec, _pods, _service_ip, _wait_ready
from tests.kube import eventually

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


def ticket_model_app(requests: list[dict[str, Any]]) -> Starlette:
    """A stand-in OpenAI-compatible model: first it calls `file_ticket`, then it answers with what the tool returned."""

    async def completions(request: Request) -> JSONResponse:
        body = await request.json()
        requests.append(body)
        last = body["messages"][-1]
        if last["role"] == "tool":
            message: dict[str, Any] = {"role": "assistant", "content": f"filed: {last['content']}"}
        else:
            call = {"name": "file_ticket", "arguments": json.dumps({"title": "Printer on fire", "severity": "high"})}
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": call}],
            }
        return JSONResponse(
            {
                "id": "chatcmpl-e2e",
                "object": "chat.completion",
                "created": 1700000000,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "tool_calls" if "tool_calls" in message else "stop",
                        "message": message,
                    }
                ],
                "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
            }
        )

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


@contextmanager
def serving_on(app: Starlette, host: str) -> Iterator[str]:
    """`app` on uvicorn in a thread, bound to `host` (the node's address on the host, which pods reach)."""
    sock = socket.socket()
    sock.bind((host, 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        eventually(lambda: server.started, timeout=15, what="the stand-in model server")
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def _apply_example(node_cluster: NodeCluster, namespace: str, image: Planned, *, model_url: str) -> str:
    """The example's own manifest on the local image, its model at `model_url`, no status API; returns the JWT key."""
    manifest: dict[str, Any] = yaml.safe_load((EXAMPLE / "agent.yaml").read_text())
    spec = manifest["spec"]
    spec["agent"]["endpoint"]["baseURL"] = f"{model_url}/v1"
    del spec["services"]
    spec["pod"] |= {"image": image.image.ref, "imagePullPolicy": "Never"}
    manifest["metadata"]["namespace"] = namespace
    key = secrets.token_hex(32)
    for ref, value in (
        (spec["security"]["auth"]["secretRef"], key),
        (spec["agent"]["endpoint"]["apiKeySecretRef"], "sk-e2e"),
    ):
        node_cluster.kube.kubectl(
            "create", "secret", "generic", ref["name"], "-n", namespace, f"--from-literal={ref['key']}={value}"
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
    requests: list[dict[str, Any]] = []
    with serving_on(ticket_model_app(requests), node_cluster.cluster.layout.node_ip) as model_url:
        key = _apply_example(node_cluster, namespace, example_image, model_url=model_url)
        _wait_ready(node_cluster, namespace, NAME, timeout=180)
        [pod] = _pods(node_cluster, namespace, NAME)
        token = mint_token(key=key, subject="e2e-user", roles=["agent_operator"], audience="support")
        url = f"http://{_service_ip(node_cluster, namespace, NAME)}:8080/v1/run"
        body = _run(url, token, "My printer is on fire")

    assert pod["spec"]["containers"][0]["image"] == example_image.image.ref
    ticket = json.loads(body["output"].removeprefix("filed: "))
    assert re.fullmatch(r"T-[0-9a-f]{8}", ticket["id"]), body
    assert ticket | {"id": ""} == {
        "id": "",
        "title": "Printer on fire",
        "severity": "high",
        "status": "open",
        "reporter": "e2e-user",
    }
    assert [tool["function"]["name"] for tool in requests[0]["tools"]] == [
        "file_ticket",
        "look_up_ticket",
        "close_ticket",
        "service_status",
    ]
    assert requests[0]["model"] == "gpt-4o-mini" and len(requests) == 2

    stored = _exec(
        node_cluster,
        namespace,
        pod["metadata"]["name"],
        "import sqlite3; print(dict(sqlite3.connect('/var/lib/agentry/agentry.db')"
        ".execute(\"SELECT key, value FROM agent_records WHERE collection = 'tickets'\").fetchall()))",
    )
    assert stored.returncode == 0, stored.stderr
    assert ticket["id"] in stored.stdout and "e2e-user" in stored.stdout, stored.stdout
