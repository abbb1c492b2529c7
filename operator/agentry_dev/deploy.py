"""Agentry installed into a local cluster as a user installs it: local images imported, the Helm chart installed."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from agentry_dev.cluster.cluster import Cluster, ClusterError
from agentry_dev.images import plan
from agentry_dev.images.build import Planned, Progress, ensure_images
from agentry_dev.images.plan import ImageRef

CHART = Path(__file__).resolve().parents[2] / "helm" / "agentry"
"""The chart in this checkout (`dev up` runs from a checkout: it builds the images from its Dockerfiles)."""

RELEASE = "agentry"
"""Helm release name, and the namespace the operator runs in."""

INSTALL_TIMEOUT = "180s"
"""`helm --wait` budget: the operator's pod Ready (a few seconds warm) with room for a loaded machine."""


@dataclass(frozen=True)
class LocalImages:
    """Agentry's images as built here: the pause image the node needs first, the operator and runtime the chart runs."""

    items: tuple[Planned, ...]

    def _ref(self, name: str) -> ImageRef:
        return next(item.image for item in self.items if item.name == name)

    @property
    def pause(self) -> Planned:
        """The sandbox image and its archive, which `Cluster.up` preloads."""
        return next(item for item in self.items if item.name == "pause")

    @property
    def operator(self) -> ImageRef:
        """The operator image the chart's Deployment runs."""
        return self._ref("operator")

    @property
    def runtime(self) -> ImageRef:
        """The runtime image the operator puts in agents' pods."""
        return self._ref("runtime")


def build_images(progress: Progress | None = None) -> LocalImages:
    """Build what is missing (cached by content: seconds when nothing changed)."""
    return LocalImages(tuple(ensure_images(progress=progress)))


def start_cluster(name: str, images: LocalImages, *, timeout: float = 180.0) -> Cluster:
    """The named cluster with a real node whose containerd has the pause image before the kubelet starts."""
    pause = images.pause
    return Cluster.up(name, real_node=True, preload=(pause.archive,), sandbox_image=pause.image.ref, timeout=timeout)


def helm(cluster: Cluster, *args: str) -> str:
    """Run the cluster's helm; a failure raises ClusterError with helm's own message."""
    argv = [str(cluster.bin_dir / "helm"), "--kubeconfig", str(cluster.kubeconfig), *args]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    if done.returncode != 0:
        raise ClusterError(f"helm {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout


def install(
    cluster: Cluster, *, release: str = RELEASE, namespace: str = RELEASE, progress: Progress | None = None
) -> LocalImages:
    """Import the images into the node's containerd and `helm upgrade --install` the chart, waiting for Ready.

    Returns the images the chart now runs.
    """
    # The plan is made again here, so the chart gets exactly the images that were imported (a source edited
    # since `build_images` would otherwise leave the chart naming images the node does not have).
    imported = ensure_images(import_to=str(cluster.layout.containerd_socket), progress=progress)
    refs = {item.name: item.image for item in imported}
    helm(
        cluster,
        "upgrade",
        "--install",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--create-namespace",
        *plan.helm_set_args(refs),
        "--wait",
        "--timeout",
        INSTALL_TIMEOUT,
    )
    return LocalImages(tuple(imported))
