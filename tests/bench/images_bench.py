"""Benchmark: `agentry dev images build` cold and warm, and the size of each image.

Cold is a fresh cache folder: no archives, no downloaded Debian packages, an empty buildah storage of its own
(nothing of the machine's image cache is reused), so every package is downloaded again. Warm is the same command
again with nothing changed. Sizes are the uncompressed layers of each image's archive (what containerd unpacks).
Needs root, buildah, mmdebstrap and gcc, as the command does:

    .venv/bin/python tests/bench/images_bench.py results.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from agentry_dev.images.build import Progress, ensure_images, image_size, layout, remove_tree


def measure(root: Path) -> dict[str, object]:
    """Build cold into `root`, then warm; times in seconds, sizes in MiB."""
    started = time.monotonic()
    items = ensure_images(root=root, progress=Progress())
    cold = time.monotonic() - started
    started = time.monotonic()
    ensure_images(root=root, progress=Progress())
    warm = time.monotonic() - started
    return {
        "cold_seconds": round(cold, 1),
        "warm_seconds": round(warm, 2),
        "images": {
            item.name: {"ref": item.image.ref, "size_mib": round(image_size(item.archive) / 2**20, 1)} for item in items
        },
    }


def main() -> None:
    """Run once and write the results as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="where to write the results (JSON)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="agentry-images-bench-"))
    try:
        results = measure(root)
    finally:
        storage = layout(root)
        # The bench's own buildah storage goes with the folder; refused if anything is still mounted in it.
        remove_tree(storage.root)
        shutil.rmtree(root)
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
