from __future__ import annotations

import re
from typing import Any

import pytest

from agent_runtime.security.pii import Anonymizer
from agent_runtime.security.piidetect import find_pii, luhn_ok
from agentry_api.v1alpha1 import PrivacySpec

KEY = b"k" * 16 + b"-test-pii-key"
OTHER_KEY = b"o" * 16 + b"-other-pii-key"
KINDS = ["email", "phone", "ssn", "creditCard", "ipAddress"]

# (kind, text containing exactly one value of that kind, the value)
SAMPLES = [
    ("email", "write to Alice.Smith+tag@mail.example.co.uk today.", "Alice.Smith+tag@mail.example.co.uk"),
    ("phone", "call +49 151 2345 6789, please", "+49 151 2345 6789"),
    ("phone", "office: (555) 123-4567.", "(555) 123-4567"),
    ("phone", "cell 555.123.4567 after 6", "555.123.4567"),
    ("ssn", "SSN 123-45-6789 on file", "123-45-6789"),
    ("creditCard", "card 4111 1111 1111 1111 expires", "4111 1111 1111 1111"),
    ("creditCard", "amex 378282246310005.", "378282246310005"),
    ("ipAddress", "from 203.0.113.7.", "203.0.113.7"),
    ("ipAddress", "via 2001:db8::8a2e:370:7334 now", "2001:db8::8a2e:370:7334"),
]


def anonymizer(mode: str, key: bytes | None = KEY, kinds: list[str] | None = None) -> Anonymizer:
    spec = PrivacySpec.model_validate(
        {"mode": mode, "redactFields": kinds or KINDS, "hmacKeySecretRef": {"name": "pii", "key": "key"}}
    )
    return Anonymizer(spec, key)


@pytest.mark.parametrize(("kind", "text", "value"), SAMPLES)
@pytest.mark.parametrize("mode", ["hmac", "mask", "drop"])
def test_each_kind_in_each_mode(mode: str, kind: str, text: str, value: str) -> None:
    redaction = anonymizer(mode).redact_text(text)
    assert value not in redaction.text
    assert redaction.counts == {kind: 1}
    before, after = text.split(value)
    expected = {"mask": f"<{kind}>", "drop": "", "hmac": f"<{kind}:[0-9a-f]{{16}}>"}[mode]
    assert re.fullmatch(re.escape(before) + expected + re.escape(after), redaction.text)


@pytest.mark.parametrize(
    "text",
    [
        "order 2024-01-15 shipped",
        "invoice 4111 1111 1111 1112 (bad Luhn)",
        "version 1.2.3.4.5 and 999.1.1.1",
        "ssn 000-12-3456 and 666-12-3456 are never issued",
        "ids 1234567890 and 42",
        "C++ std::vector and a::b, ab::cd",
        "meet at 12:30:45",
        "plain text without anything",
        "user@localhost has no domain",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert anonymizer("mask").redact_text(text).text == text


def test_hmac_is_stable_for_a_key_and_differs_across_keys() -> None:
    first = anonymizer("hmac").redact_text("a@b.example").text
    assert anonymizer("hmac").redact_text("A@B.example").text == first
    assert anonymizer("hmac", key=OTHER_KEY).redact_text("a@b.example").text != first
    assert anonymizer("hmac").redact_text("c@b.example").text != first


def test_hmac_joins_differently_formatted_numbers() -> None:
    hmac_mode = anonymizer("hmac")
    assert hmac_mode.redact_text("(555) 123-4567").text == hmac_mode.redact_text("555-123-4567").text


def test_the_kind_separates_pseudonym_domains() -> None:
    hmac_mode = anonymizer("hmac")
    assert hmac_mode.pseudonym("ssn", "123456789") != hmac_mode.pseudonym("phone", "123456789")


@pytest.mark.parametrize(("key", "message"), [(None, "no built-in salt"), (b"", "no built-in salt"), (b"short", "16")])
def test_hmac_without_a_usable_key_is_a_construction_error(key: bytes | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        anonymizer("hmac", key=key)


def test_mask_and_drop_need_no_key() -> None:
    assert anonymizer("mask", key=None).redact_text("x@y.example").text == "<email>"


def test_only_configured_kinds_are_redacted() -> None:
    redaction = anonymizer("mask", kinds=["email"]).redact_text("a@b.example 203.0.113.7")
    assert redaction.text == "<email> 203.0.113.7"


def test_disabled_passes_text_unchanged() -> None:
    spec = PrivacySpec.model_validate(
        {"enabled": False, "mode": "hmac", "hmacKeySecretRef": {"name": "pii", "key": "key"}}
    )
    assert Anonymizer(spec, None).redact_text("a@b.example").counts == {}


def test_many_findings_in_one_text() -> None:
    text = "a@b.example, c@d.example; card 4111-1111-1111-1111; ip 10.0.0.1 ssn 123-45-6789"
    redaction = anonymizer("mask").redact_text(text)
    assert redaction.text == "<email>, <email>; card <creditCard>; ip <ipAddress> ssn <ssn>"
    assert redaction.counts == {"email": 2, "creditCard": 1, "ipAddress": 1, "ssn": 1}


def test_redact_json_walks_values_and_keeps_keys() -> None:
    value: dict[str, Any] = {
        "user": {"email": "a@b.example", "tags": ["x", "call (555) 123-4567"]},
        "card": 4111111111111111,
        "count": 3,
        "ok": True,
        "none": None,
        "tuple": ("10.0.0.1",),
    }
    redacted, counts = anonymizer("mask").redact_json(value)
    assert redacted == {
        "user": {"email": "<email>", "tags": ["x", "call <phone>"]},
        "card": "<creditCard>",
        "count": 3,
        "ok": True,
        "none": None,
        "tuple": ["<ipAddress>"],
    }
    assert counts == {"email": 1, "phone": 1, "creditCard": 1, "ipAddress": 1}
    assert value["user"]["email"] == "a@b.example"


def test_overlaps_resolve_to_the_higher_priority_kind() -> None:
    findings = find_pii("4111 1111 1111 1111", kinds=["phone", "creditCard"])
    assert [finding.kind for finding in findings] == ["creditCard"]


@pytest.mark.parametrize(("digits", "ok"), [("4111111111111111", True), ("4111111111111112", False), ("0", True)])
def test_luhn(digits: str, ok: bool) -> None:
    assert luhn_ok(digits) is ok
