"""PII anonymisation of everything the runtime stores or logs (prompts, outputs, errors).

The server runs every text through an Anonymizer before it reaches the database, the cache, a log
line or the audit trail. Three modes: `hmac` replaces a value by a keyed pseudonym
(`<email:3f2a9c1b0d4e5f67>`): the same value gives the same pseudonym under one key, so records can
still be joined, but without the key nobody can confirm a guess. There is no built-in salt: a
salt shipped in the code would let anyone who reads the code test guesses. `mask` replaces it by
its kind (`<email>`); `drop` removes it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentry_api.v1alpha1 import PrivacySpec, RedactionMode

from .piidetect import Finding, find_pii

#: Shortest HMAC key accepted: 128 bits, so the pseudonyms cannot be brute-forced through the key.
MIN_KEY_BYTES = 16
#: Hex characters of the HMAC kept in a pseudonym (64 bits: collisions are negligible for joins).
PSEUDONYM_HEX = 16


@dataclass(frozen=True)
class Redaction:
    """Redacted text and how many values of each kind were replaced (only kinds that occurred)."""

    text: str
    counts: dict[str, int] = field(default_factory=dict)


class Anonymizer:
    """Redacts the PII kinds of a PrivacySpec in the spec's mode."""

    def __init__(self, spec: PrivacySpec, key: bytes | str | None) -> None:
        raw = key.encode() if isinstance(key, str) else key
        if spec.enabled and spec.mode == RedactionMode.HMAC:
            if not raw:
                raise ValueError(
                    "spec.security.privacy.mode hmac needs spec.security.privacy.hmacKeySecretRef "
                    "(there is no built-in salt)"
                )
            if len(raw) < MIN_KEY_BYTES:
                raise ValueError(
                    f"spec.security.privacy.hmacKeySecretRef: the HMAC key has {len(raw)} bytes, "
                    f"at least {MIN_KEY_BYTES} are needed"
                )
        self._spec = spec
        self._key = raw or b""

    @property
    def enabled(self) -> bool:
        """False when the spec turns anonymisation off (texts then pass unchanged)."""
        return self._spec.enabled and bool(self._spec.redact_fields)

    def redact_text(self, text: str) -> Redaction:
        """The text with every finding replaced, and the counts per kind."""
        if not self.enabled or not text:
            return Redaction(text=text)
        findings = find_pii(text, kinds=self._spec.redact_fields)
        if not findings:
            return Redaction(text=text)
        parts: list[str] = []
        position = 0
        for finding in findings:
            parts.append(text[position : finding.start])
            parts.append(self.replacement(finding))
            position = finding.end
        parts.append(text[position:])
        return Redaction(text="".join(parts), counts=dict(Counter(finding.kind for finding in findings)))

    def redact_json(self, value: Any) -> tuple[Any, dict[str, int]]:
        """A copy of a JSON-like value with every string value (and integer) redacted.

        Mapping keys are kept: they are the shape of the data, and rewriting them could merge two
        keys into one. An integer that contains PII (a card number sent as a number) comes back
        as its redacted string; other numbers, booleans and None are kept.
        """
        counts: Counter[str] = Counter()
        return self._walk(value, counts), dict(counts)

    def replacement(self, finding: Finding) -> str:
        """What replaces one finding in the configured mode."""
        if self._spec.mode == RedactionMode.DROP:
            return ""
        if self._spec.mode == RedactionMode.MASK:
            return f"<{finding.kind}>"
        return f"<{finding.kind}:{self.pseudonym(finding.kind, finding.value)}>"

    def pseudonym(self, kind: str, normalized: str) -> str:
        """HMAC-SHA256 of kind and normalised value under the key (the kind separates domains)."""
        digest = hmac.new(self._key, f"{kind}\x00{normalized}".encode(), hashlib.sha256).hexdigest()
        return digest[:PSEUDONYM_HEX]

    def _walk(self, value: Any, counts: Counter[str]) -> Any:
        if isinstance(value, str):
            return self._count(self.redact_text(value), counts)
        if isinstance(value, Mapping):
            return {key: self._walk(item, counts) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self._walk(item, counts) for item in value]
        if isinstance(value, int) and not isinstance(value, bool):
            redaction = self.redact_text(str(value))
            return self._count(redaction, counts) if redaction.counts else value
        return value

    @staticmethod
    def _count(redaction: Redaction, counts: Counter[str]) -> str:
        counts.update(redaction.counts)
        return redaction.text
