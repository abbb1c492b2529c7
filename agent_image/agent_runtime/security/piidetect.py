"""Finding personal data in text: one detector per kind, validated beyond the regular expression.

Detectors are tuned against false positives that would corrupt ordinary text: card numbers must
pass the Luhn check, IP addresses must parse, SSNs exclude the ranges never issued, and phones are
only recognised in an international form (+49 151 ...) or the North-American one ((555) 123-4567,
555-123-4567). A bare run of digits is not called a phone: it is far more often an id or amount.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from agentry_api.v1alpha1 import PiiKind


@dataclass(frozen=True)
class Detector:
    """How one kind of PII is found, confirmed and normalised (so pseudonyms join across spellings)."""

    kind: PiiKind
    pattern: re.Pattern[str]
    valid: Callable[[str], bool]
    normalize: Callable[[str], str]


@dataclass(frozen=True)
class Finding:
    """One piece of PII: where it is, what it is, and its normalised value."""

    start: int
    end: int
    kind: PiiKind
    value: str


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum that every payment card number satisfies."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _card_ok(text: str) -> bool:
    digits = _digits(text)
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _ip_ok(text: str) -> bool:
    """A parseable address; IPv6 also needs a group of 3+ hex digits, so `a::b` in code is left alone."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return ":" not in text or any(len(group) >= 3 for group in text.split(":"))


def _phone_ok(text: str) -> bool:
    return 7 <= len(_digits(text)) <= 15


def _phone_normal(text: str) -> str:
    return ("+" if text.startswith("+") else "") + _digits(text)


EMAIL = Detector(
    kind="email",
    pattern=re.compile(
        r"(?<![\w.%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![\w-])"
    ),
    valid=lambda text: True,
    normalize=str.lower,
)
CREDIT_CARD = Detector(
    kind="creditCard",
    pattern=re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"),
    valid=_card_ok,
    normalize=_digits,
)
SSN = Detector(
    kind="ssn",
    pattern=re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])"),
    valid=lambda text: True,
    normalize=_digits,
)
IP_ADDRESS = Detector(
    kind="ipAddress",
    pattern=re.compile(
        r"(?<![\w.:])(?:(?:\d{1,3}\.){3}\d{1,3}|(?=[0-9A-Fa-f:]*[0-9A-Fa-f])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4})"
        r"(?![\w:]|\.\d)"
    ),
    valid=_ip_ok,
    normalize=lambda text: str(ipaddress.ip_address(text)),
)
PHONE = Detector(
    kind="phone",
    pattern=re.compile(
        r"(?<![\w+])(?:\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,6}|(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4})(?![\w])"
    ),
    valid=_phone_ok,
    normalize=_phone_normal,
)
#: Detectors in priority order: where two findings overlap, the earlier kind wins (a card number
#: is never half-redacted as a phone).
DETECTORS: tuple[Detector, ...] = (EMAIL, CREDIT_CARD, SSN, IP_ADDRESS, PHONE)


def find_pii(text: str, *, kinds: Iterable[PiiKind]) -> list[Finding]:
    """Non-overlapping findings of the given kinds, in text order."""
    wanted = frozenset(kinds)
    taken: list[Finding] = []
    for detector in DETECTORS:
        if detector.kind not in wanted:
            continue
        for match in detector.pattern.finditer(text):
            value = match.group()
            if detector.valid(value) and not _overlaps(taken, match.start(), match.end()):
                taken.append(Finding(match.start(), match.end(), detector.kind, detector.normalize(value)))
    return sorted(taken, key=lambda finding: finding.start)


def _overlaps(taken: list[Finding], start: int, end: int) -> bool:
    return any(start < other.end and other.start < end for other in taken)
