"""`agentry dev images build`: the images built locally, cached by content, optionally imported into containerd."""

from __future__ import annotations

import argparse
import sys
import time

from agentry_dev.cluster.commands import Subparsers, dev_subparsers
from agentry_dev.images.build import ImageBuildError, Progress, ensure_images, image_size


def register(subparsers: Subparsers) -> None:
    """Add `dev images build`."""
    dev = dev_subparsers(subparsers)
    images = dev.add_parser("images", help="Agentry's container images, built here without a daemon or registry")
    leaves = images.add_subparsers(dest="images_command", required=True, metavar="ACTION")
    build = leaves.add_parser("build", help="build what changed (base, pause, runtime, operator); seconds when cached")
    build.add_argument(
        "--import-to-containerd",
        metavar="ADDRESS",
        help="also import the images into the containerd at this socket (namespace k8s.io)",
    )
    build.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        items = ensure_images(import_to=args.import_to_containerd, progress=Progress())
    except (ImageBuildError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for item in items:
        print(f"{item.name:<9} {item.image.ref:<56} {image_size(item.archive) / 2**20:7.1f} MiB  {item.archive}")
    print(f"({time.monotonic() - started:.1f} s)")
    return 0
