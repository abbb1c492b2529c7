"""The one line a runtime that cannot start leaves behind: on stderr and in the pod's termination message.

The kubelet copies the termination message file into the container's status (`lastState.terminated.message`),
where the operator reads it and puts it in the agent's Ready condition; without it a user sees only
CrashLoopBackOff. The line names the field, file or port and what was expected, never a Secret's value.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from agentry_api import wiring

#: Longest message written, in UTF-8 bytes: the kubelet keeps 4096, and the operator quotes the line in a
#: condition and an Event (which the API server cuts at 1 KiB), with the pod's name and exit code around it.
MAX_MESSAGE_BYTES = 900
ELLIPSIS = "..."


class StartupError(Exception):
    """The runtime cannot start for a reason other than its configuration (the port is taken)."""


def one_line(text: str, *, limit: int = MAX_MESSAGE_BYTES) -> str:
    """`text` with every run of whitespace (newlines included) made one space, cut to `limit` UTF-8 bytes."""
    line = " ".join(text.split())
    data = line.encode("utf-8")
    if len(data) <= limit:
        return line
    return data[: limit - len(ELLIPSIS)].decode("utf-8", errors="ignore") + ELLIPSIS


def termination_log(environ: Mapping[str, str]) -> Path | None:
    """The file to write the reason to, or None where there is none (outside a pod).

    The default path is written only when it exists: the kubelet creates and mounts it for every container,
    and a process on a host must not create files in /dev. A path set in AGENTRY_TERMINATION_LOG is created
    when its directory exists. No directory is ever created.
    """
    configured = environ.get(wiring.TERMINATION_LOG_ENV)
    if configured:
        path = Path(configured)
        return path if path.parent.is_dir() else None
    path = Path(wiring.TERMINATION_LOG_PATH)
    return path if path.is_file() else None


def report_failure(reason: str, *, environ: Mapping[str, str] | None = None, stream: TextIO | None = None) -> str:
    """Write the reason as one line to `stream` (stderr) and to the termination log; return the line written.

    Best effort: a termination log that cannot be written (read-only, gone) is skipped, stderr still has the
    line, and the pod spec's FallbackToLogsOnError makes the kubelet use the log's tail instead.
    """
    line = one_line(reason)
    print(f"agentry-runtime: {line}", file=stream or sys.stderr, flush=True)
    path = termination_log(os.environ if environ is None else environ)
    if path is not None:
        try:
            path.write_text(line + "\n", encoding="utf-8")
        except OSError:
            pass
    return line
