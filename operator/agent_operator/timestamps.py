"""metav1.Time on the wire: one formatter and one parser, so every status field and Event agrees."""

from __future__ import annotations

from datetime import UTC, datetime

_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def timestamp(when: datetime | float) -> str:
    """RFC 3339 at second precision in UTC, as metav1.Time is stored; `when` a datetime or epoch seconds."""
    moment = datetime.fromtimestamp(when, UTC) if isinstance(when, int | float) else when.astimezone(UTC)
    return moment.strftime(_FORMAT)


def epoch(stamp: str) -> float:
    """Epoch seconds of a metav1.Time as the API server writes it."""
    return datetime.strptime(stamp, _FORMAT).replace(tzinfo=UTC).timestamp()
