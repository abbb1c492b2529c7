"""JSON-line logging: fields only, no exception messages, no URL logs from HTTP clients."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from agent_runtime.logs import QUIET_LOGGERS, configure_logging


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, {name: logging.getLogger(name).level for name in QUIET_LOGGERS})
    out = io.StringIO()
    configure_logging(level="info", stream=out)
    yield out
    root.handlers[:], root.level = saved[0], saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_fields_become_keys(stream: io.StringIO) -> None:
    logging.getLogger("agentry.access").info("request", extra={"fields": {"status": 200, "latencyMs": 1.5}})
    [line] = lines(stream)
    assert line["message"] == "request"
    assert (line["status"], line["latencyMs"], line["level"]) == (200, 1.5, "info")


def test_exceptions_keep_their_type_and_frames_not_their_message(stream: io.StringIO) -> None:
    personal = "carol" + "@example.com"
    try:
        raise ValueError(f"prompt was: mail {personal}")
    except ValueError:
        logging.getLogger("agentry").exception("run failed")
    [line] = lines(stream)
    assert line["exception"] == "ValueError"
    assert "test_logs.py" in str(line["traceback"])
    assert "carol@example.com" not in stream.getvalue()


def test_http_clients_do_not_log_urls_at_info(stream: io.StringIO) -> None:
    logging.getLogger("httpx").info("HTTP Request: GET http://api/users/carol@example.com")
    logging.getLogger("httpx").warning("pool exhausted")
    assert [line["message"] for line in lines(stream)] == ["pool exhausted"]
