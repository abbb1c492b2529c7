"""JSON-lines logging: one object per line on stdout, fields instead of formatted text.

Only what the caller passes in `extra={"fields": ...}` is added, so no prompt, output or header ever
reaches a log line by accident; callers pass anonymised values.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any, TextIO

#: Loggers held at WARNING whatever the level: they would log request URLs.
QUIET_LOGGERS = ("httpx", "httpcore", "openai")


class JsonFormatter(logging.Formatter):
    """Formats a record as `{"time", "level", "logger", "message", ...fields}`."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON object; an exception adds its type and its frames."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info and record.exc_info[1] is not None:
            # The type and the frames, never the message: messages of validation errors quote input.
            line["exception"] = type(record.exc_info[1]).__name__
            line["traceback"] = "".join(traceback.format_tb(record.exc_info[2]))
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(*, level: str = "info", stream: TextIO | None = None) -> None:
    """Route the root logger (uvicorn's included) through the JSON formatter on stdout."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # HTTP clients log every URL at INFO; a tool's URL path can carry personal data the model chose.
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
