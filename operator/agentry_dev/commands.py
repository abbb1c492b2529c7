"""`agentry dev up | down | pod-runner`: the local demo, from nothing to an agent that answers."""

from __future__ import annotations

import argparse
import base64
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from agentry_api.wiring import RUNTIME_PORT
from agentry_dev import deploy
from agentry_dev.cluster.cluster import Cluster, ClusterError, clusters_dir
from agentry_dev.cluster.commands import Subparsers, dev_subparsers
from agentry_dev.cluster.versions import cache_root
from agentry_dev.images.build import Progress

from .podrunner import PodRunner, run_forever

DEMO_NAMESPACE = "default"
DEMO_AGENT = "hello"
DEMO_SECRET = "hello-jwt"


def demo_manifest() -> dict[str, object]:
    """The sample AgentDeployment: the offline model, JWT auth, the Secret `dev up` creates."""
    return {
        "apiVersion": "agentry.dev/v1alpha1",
        "kind": "AgentDeployment",
        "metadata": {"name": DEMO_AGENT, "namespace": DEMO_NAMESPACE},
        "spec": {
            "agent": {"model": "test", "instructions": "You answer questions about Agentry."},
            "security": {"auth": {"secretRef": {"name": DEMO_SECRET, "key": "key"}}},
            "health": {"pollIntervalSeconds": 5},
        },
    }


def _step(message: str) -> float:
    print(f"==> {message}", file=sys.stderr, flush=True)
    return time.monotonic()


def _state_dir(name: str) -> Path:
    return clusters_dir(cache_root()) / name / "dev"


def _kubectl(cluster: Cluster, *args: str, stdin: str | None = None) -> str:
    argv = [str(cluster.bin_dir / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), *args]
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _wait_answering(url: str, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise ClusterError(f"{url} did not answer within {timeout:.0f}s")
        time.sleep(0.5)


def _service_ip(cluster: Cluster) -> str:
    ip = _kubectl(cluster, "get", "service", DEMO_AGENT, "-n", DEMO_NAMESPACE, "-o", "jsonpath={.spec.clusterIP}")
    if not ip:
        raise ClusterError(f"the Service of {DEMO_AGENT} has no ClusterIP")
    return ip.strip()


def _up(args: argparse.Namespace) -> int:
    try:
        _bring_up(args.name)
    except (ClusterError, RuntimeError) as error:
        print(f"error: {error}\n(logs: {clusters_dir(cache_root()) / args.name / 'logs'})", file=sys.stderr)
        return 1
    return 0


def _bring_up(name: str) -> None:
    started = _step("building Agentry's images (the first run takes minutes; then they are cached by content)")
    progress = Progress()
    images = deploy.build_images(progress)
    print(f"    images ready in {time.monotonic() - started:.1f}s", file=sys.stderr)
    started = _step("starting the control plane and the real node (the first run builds them from source)")
    cluster = deploy.start_cluster(name, images)
    print(f"    cluster ready in {time.monotonic() - started:.1f}s at {cluster.server}", file=sys.stderr)
    started = _step(f"helm install {deploy.RELEASE} (the operator runs as a pod under its own ServiceAccount)")
    deploy.install(cluster, progress=progress)
    print(f"    chart installed in {time.monotonic() - started:.1f}s", file=sys.stderr)
    _step(f"applying the sample agent {DEMO_NAMESPACE}/{DEMO_AGENT}")
    key = _demo_key(cluster)
    _kubectl(cluster, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(demo_manifest()))
    _kubectl(
        cluster,
        "wait",
        "--for=condition=Ready",
        f"agentdeployment/{DEMO_AGENT}",
        "-n",
        DEMO_NAMESPACE,
        "--timeout=180s",
    )
    ip = _service_ip(cluster)
    _wait_answering(f"http://{ip}:{RUNTIME_PORT}/readyz", timeout=60)
    _print_next_steps(cluster, ip=ip, key=key)


def _demo_key(cluster: Cluster) -> str:
    """The demo's JWT key: kept when the Secret exists, created otherwise."""
    try:
        found = _kubectl(cluster, "get", "secret", DEMO_SECRET, "-n", DEMO_NAMESPACE, "-o", "jsonpath={.data.key}")
    except ClusterError:
        found = ""
    if found:
        return base64.b64decode(found).decode()
    key = secrets.token_hex(32)
    _kubectl(cluster, "create", "secret", "generic", DEMO_SECRET, "-n", DEMO_NAMESPACE, f"--from-literal=key={key}")
    return key


def _print_next_steps(cluster: Cluster, *, ip: str, key: str) -> None:
    from agent_runtime.security.tokens import mint_token

    token = mint_token(key=key, subject="demo-user", roles=["agent_operator"])
    print(_kubectl(cluster, "get", "agents", "-n", DEMO_NAMESPACE))
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    print(f"export PATH={cluster.bin_dir}:$PATH")
    print(f"TOKEN={token}")
    print(
        f"curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
        f'-d \'{{"prompt": "What is Agentry?"}}\' http://{ip}:{RUNTIME_PORT}/v1/run'
    )
    print("# `agentry dev down` removes all of it.")


def _down(args: argparse.Namespace) -> int:
    cluster = Cluster.find(args.name)
    if cluster is not None:
        try:
            cluster.down()
        except ClusterError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    print(f"local Agentry {args.name!r} is down")
    return 0


def _pod_runner(args: argparse.Namespace) -> int:
    cluster = Cluster.find(args.name)
    if cluster is None:
        print(f"error: no local cluster named {args.name!r}; run `agentry dev up` first", file=sys.stderr)
        return 1
    kubectl = [str(cluster.bin_dir / "kubectl"), "--kubeconfig", str(cluster.kubeconfig)]
    workdir = Path(args.workdir) if args.workdir else _state_dir(args.name) / "pods"
    run_forever(PodRunner(kubectl=kubectl, workdir=workdir, namespace=args.namespace), interval=args.interval)
    return 0


def register(subparsers: Subparsers) -> None:
    """Add `dev up`, `dev down` and `dev pod-runner`."""
    dev = dev_subparsers(subparsers)
    for name, func, help_text in (
        ("up", _up, "images, control plane, real node, the chart and a sample agent that answers"),
        ("down", _down, "stop everything `dev up` started; nothing stays behind on the host"),
        ("pod-runner", _pod_runner, "run the agent runtime for each KWOK agent pod (foreground; scale tests)"),
    ):
        parser = dev.add_parser(name, help=help_text)
        parser.add_argument("--name", default="agentry", help="local cluster name (default: %(default)s)")
        if name == "pod-runner":
            parser.add_argument("--interval", type=float, default=1.0, help="seconds between pod listings")
            parser.add_argument("--namespace", help="only this namespace's pods (default: all namespaces)")
            parser.add_argument("--workdir", help="folder for the runtimes' config, secrets, data and logs")
        parser.set_defaults(func=func)
