"""The build module's own machinery, fast: the tool runner's log and errors, the cache lock, the archive size."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
from pathlib import Path

import pytest

from agentry_dev.images import build
from agentry_dev.images.build import ImageBuildError, Progress, image_size, run_logged


def test_a_failing_tool_names_itself_and_shows_its_log_tail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "x.log"
    script = "echo 'STEP 1/2: RUN thing'; echo quiet line; echo boom >&2; exit 3"
    with pytest.raises(ImageBuildError) as caught:
        run_logged(["sh", "-c", script], log=log, progress=Progress())
    assert "sh -c failed (exit 3)" in str(caught.value) and "boom" in str(caught.value)
    echoed = capsys.readouterr().err
    assert "STEP 1/2: RUN thing" in echoed and "quiet line" not in echoed
    assert "quiet line" in log.read_text()


def test_the_last_output_line_is_returned(tmp_path: Path) -> None:
    assert run_logged(["sh", "-c", "echo one; echo two; echo"], log=tmp_path / "x.log") == "two"


def test_a_second_build_waits_for_the_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lock = tmp_path / ".lock"
    order: list[str] = []
    with build._locked(lock, Progress()):

        def wait_then_record() -> None:
            with build._locked(lock, Progress()):
                order.append("second")

        second = threading.Thread(target=wait_then_record)
        second.start()
        deadline = time.monotonic() + 10
        while "waiting for another image build" not in capsys.readouterr().err:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        order.append("first")
    second.join(timeout=10)
    assert order == ["first", "second"]


def test_image_size_sums_the_uncompressed_layers(tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    with tarfile.open(archive, "w") as bundle:
        for name, data in {
            "manifest.json": json.dumps([{"Config": "c.json", "Layers": ["a/layer.tar", "b/layer.tar"]}]).encode(),
            "c.json": b"{}",
            "a/layer.tar": b"x" * 1000,
            "b/layer.tar": b"y" * 24,
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
    assert image_size(archive) == 1024


def test_remove_tree_refuses_a_folder_with_a_mount_inside(tmp_path: Path) -> None:
    target = tmp_path / "rootfs"
    (target / "proc").mkdir(parents=True)
    mounts = tmp_path / "mounts"
    mounts.write_text(f"proc {target / 'proc'} proc rw 0 0\n")
    with pytest.raises(ImageBuildError, match="still has mounts"):
        build.remove_tree(target, mounts=mounts)
    assert target.exists()
    mounts.write_text(f"proc {tmp_path}-other/proc proc rw 0 0\n")
    build.remove_tree(target, mounts=mounts)
    assert not target.exists()
