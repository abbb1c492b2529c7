"""Start, find and stop the component processes of a cluster, each in a process group of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

STOP_GRACE = 3.0
"""Seconds between SIGTERM and SIGKILL. The controllers and KWOK exit at once; the API server and etcd wait
out each other's connections for ~10 s, which buys nothing here since the next `up` wipes etcd anyway."""

REAP_TIMEOUT = 10.0
"""Seconds to wait for a SIGKILLed child to be reaped; only a process stuck in the kernel takes that long."""


def start(*, argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start one component detached from our terminal (own session), its output appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
        out.flush()
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )


def is_running(*, pid: int, binary: Path) -> bool:
    """True when `pid` is alive and is still our binary (a pid the kernel reused for something else is not)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    zombie = status.rsplit(")", 1)[-1].split()[0] == "Z"
    return not zombie and cmdline.split(b"\0", 1)[0] == str(binary).encode()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop(*, pids: dict[str, int], binaries: dict[str, Path], children: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM each live component's group, wait, then SIGKILL whatever is left; reap our own children."""
    live = [name for name, pid in pids.items() if is_running(pid=pid, binary=binaries[name])]
    for name in reversed(live):
        _signal_group(pids[name], signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline and any(_alive(name, pids, binaries, children) for name in live):
        time.sleep(0.05)
    for name in live:
        if _alive(name, pids, binaries, children):
            _signal_group(pids[name], signal.SIGKILL)
    for child in children.values():
        child.wait(timeout=REAP_TIMEOUT)


def _alive(
    name: str, pids: dict[str, int], binaries: dict[str, Path], children: dict[str, subprocess.Popen[bytes]]
) -> bool:
    child = children.get(name)
    if child is not None:
        return child.poll() is None
    return is_running(pid=pids[name], binary=binaries[name])


def log_tail(log: Path, *, lines: int = 40) -> str:
    """The last lines of a component's log, to put in an error message."""
    try:
        return "".join(log.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except OSError:
        return f"(no log at {log})"
