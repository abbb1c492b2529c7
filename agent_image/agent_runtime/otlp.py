"""Finished spans as an OTLP ExportTraceServiceRequest, written straight to protobuf's wire format.

The SDK's encoder (opentelemetry-exporter-otlp-proto-common) builds a protobuf object per span, per attribute
and per value, then serializes them: about 100 µs of the batch thread's CPU per span on this project's machine,
time the thread takes the GIL from the requests being served. Writing the bytes directly is a few times cheaper:
a key's bytes (tag, length, UTF-8) are made once and kept, and a resource's and a scope's once per batch. The
output is the SDK's byte for byte (fields in number order, defaults left out, the same grouping by resource and
scope), which tests/runtime/test_otlp.py checks against the SDK's encoder on the runtime's own spans.

Field numbers are those of opentelemetry/proto/trace/v1/trace.proto and common/v1/common.proto.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind

__all__ = ["encode_request"]

log = logging.getLogger(__name__)

#: SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK and SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK (trace.proto, SpanFlags).
HAS_IS_REMOTE = 0x100
IS_REMOTE = 0x200
#: The API's span kinds as trace.proto numbers them (SPAN_KIND_UNSPECIFIED is 0).
KINDS = {
    SpanKind.INTERNAL: 1,
    SpanKind.SERVER: 2,
    SpanKind.CLIENT: 3,
    SpanKind.PRODUCER: 4,
    SpanKind.CONSUMER: 5,
}
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Keys, and string attributes (key and value), kept encoded; past this many the cache starts over. Keys come
#: from code; most string values repeat too (an operation's name, a model's, a message's shape), and the few that
#: do not (a run's id) only make the cache start over sooner.
CACHE_LIMIT = 4096
#: Longer string values are encoded each time rather than kept.
CACHED_VALUE_LENGTH = 256

_ONE_BYTE = [bytes((n,)) for n in range(128)]
_FIXED64 = struct.Struct("<Q").pack
_DOUBLE = struct.Struct("<d").pack
_FIXED32 = struct.Struct("<I").pack
_keys: dict[str, bytes] = {}
_strings: dict[tuple[str, str], bytes] = {}


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _ONE_BYTE[value]
    value &= 0xFFFF_FFFF_FFFF_FFFF  # int64 as protobuf writes it: two's complement in ten bytes
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(number: int, wire_type: int) -> bytes:
    """A field's tag: (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32)."""
    return _varint(number << 3 | wire_type)


VARINT, FIXED64, BYTES, FIXED32 = 0, 1, 2, 5
# Tags by field number and wire type, made once; which message each belongs to is said where it is used.
_T1_BYTES, _T2_BYTES, _T3_BYTES, _T4_BYTES = (_tag(n, BYTES) for n in (1, 2, 3, 4))
_T5_BYTES, _T6_BYTES, _T7_BYTES, _T9_BYTES = (_tag(n, BYTES) for n in (5, 6, 7, 9))
_T11_BYTES, _T13_BYTES, _T15_BYTES = (_tag(n, BYTES) for n in (11, 13, 15))
_T2_VARINT, _T3_VARINT, _T4_VARINT, _T5_VARINT = (_tag(n, VARINT) for n in (2, 3, 4, 5))
_T6_VARINT, _T10_VARINT, _T12_VARINT, _T14_VARINT = (_tag(n, VARINT) for n in (6, 10, 12, 14))
_T1_FIXED64, _T4_FIXED64, _T7_FIXED64, _T8_FIXED64 = (_tag(n, FIXED64) for n in (1, 4, 7, 8))
_T6_FIXED32, _T16_FIXED32 = _tag(6, FIXED32), _tag(16, FIXED32)
#: A trace id's and a span id's field: tag, then their fixed length (16 and 8 bytes).
_TRACE_ID, _SPAN_ID, _PARENT_SPAN_ID = _T1_BYTES + b"\x10", _T2_BYTES + b"\x08", _T4_BYTES + b"\x08"


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag byte(s), the payload's length, the payload."""
    return tag + _varint(len(payload)) + payload


def _string(tag: bytes, text: str) -> bytes:
    """A string field, left out when empty (proto3 does not write defaults)."""
    return _field(tag, text.encode()) if text else b""


def _value(value: Any) -> bytes:
    """An AnyValue's fields (common.proto): the SDK's order of type checks, bool before int."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return _T2_VARINT + _ONE_BYTE[1 if value else 0]
    if isinstance(value, str):
        return _field(_T1_BYTES, value.encode())
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(f"integer {value} does not fit in an int64")
        return _T3_VARINT + _varint(value)
    if isinstance(value, float):
        return _T4_FIXED64 + _DOUBLE(value)
    if isinstance(value, bytes):
        return _field(_T7_BYTES, value)
    if isinstance(value, Sequence):
        return _field(_T5_BYTES, b"".join(_field(_T1_BYTES, _value(item)) for item in value))
    if isinstance(value, Mapping):
        return _field(_T6_BYTES, b"".join(_key_value(_T1_BYTES, str(k), v) for k, v in value.items()))
    raise TypeError(f"invalid type {type(value).__name__} of attribute value {value!r}")


def _remember(cache: dict[Any, bytes], key: Any, encoded: bytes) -> bytes:
    """Keep `encoded` under `key`, the cache starting over once it holds CACHE_LIMIT entries."""
    if len(cache) >= CACHE_LIMIT:
        cache.clear()
    cache[key] = encoded
    return encoded


def _key(key: str) -> bytes:
    """KeyValue.key, tag included, made once per key."""
    return _keys.get(key) or _remember(_keys, key, _string(_T1_BYTES, key))


def _key_value(tag: bytes, key: str, value: Any) -> bytes:
    """A KeyValue under `tag`; a short string value's is kept with its key's, since most of them repeat."""
    cacheable = type(value) is str and len(value) <= CACHED_VALUE_LENGTH
    if cacheable and (kept := _strings.get((key, value))) is not None:
        return tag + kept
    payload = _key(key) + _field(_T2_BYTES, _value(value))
    encoded = _varint(len(payload)) + payload
    if cacheable:
        _remember(_strings, (key, value), encoded)
    return tag + encoded


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    """Repeated KeyValue under `tag`; a value that cannot be encoded is logged and left out, as the SDK does."""
    if not attributes:
        return b""
    parts = []
    for key, value in attributes.items():
        try:
            parts.append(_key_value(tag, key, value))
        except Exception as error:
            log.warning("tracing: attribute %s left out of the export (%s)", key, error)
    return b"".join(parts)


def _flags(parent: SpanContext | None) -> bytes:
    flags = HAS_IS_REMOTE | IS_REMOTE if parent is not None and parent.is_remote else HAS_IS_REMOTE
    return _FIXED32(flags)


def _span(span: ReadableSpan) -> bytes:
    """One Span message (trace.proto), fields in number order."""
    context = span.context
    assert context is not None  # every span the SDK finishes has one
    parts = [
        _TRACE_ID + context.trace_id.to_bytes(16, "big"),
        _SPAN_ID + context.span_id.to_bytes(8, "big"),
    ]
    if context.trace_state:
        parts.append(_string(_T3_BYTES, ",".join(f"{key}={value}" for key, value in context.trace_state.items())))
    parent = span.parent
    if parent is not None:
        parts.append(_PARENT_SPAN_ID + parent.span_id.to_bytes(8, "big"))
    parts.append(_string(_T5_BYTES, span.name))
    kind = KINDS[span.kind]
    parts.append(_T6_VARINT + _ONE_BYTE[kind])
    if span.start_time:
        parts.append(_T7_FIXED64 + _FIXED64(span.start_time))
    if span.end_time:
        parts.append(_T8_FIXED64 + _FIXED64(span.end_time))
    parts.append(_attributes(_T9_BYTES, span.attributes))
    if span.dropped_attributes:
        parts.append(_T10_VARINT + _varint(span.dropped_attributes))
    for event in span.events:
        body = (_T1_FIXED64 + _FIXED64(event.timestamp) if event.timestamp else b"") + _string(_T2_BYTES, event.name)
        body += _attributes(_T3_BYTES, event.attributes)
        if event.dropped_attributes:
            body += _T4_VARINT + _varint(event.dropped_attributes)
        parts.append(_field(_T11_BYTES, body))
    if span.dropped_events:
        parts.append(_T12_VARINT + _varint(span.dropped_events))
    for link in span.links:
        body = _TRACE_ID + link.context.trace_id.to_bytes(16, "big")
        body += _SPAN_ID + link.context.span_id.to_bytes(8, "big")
        body += _attributes(_T4_BYTES, link.attributes)
        if link.dropped_attributes:
            body += _T5_VARINT + _varint(link.dropped_attributes)
        parts.append(_field(_T13_BYTES, body + _T6_FIXED32 + _flags(link.context)))
    if span.dropped_links:
        parts.append(_T14_VARINT + _varint(span.dropped_links))
    status = span.status
    code = status.status_code.value
    parts.append(
        _field(
            _T15_BYTES,
            _string(_T2_BYTES, status.description or "") + (_T3_VARINT + _varint(code) if code else b""),
        )
    )
    parts.append(_T16_FIXED32 + _flags(parent))
    return b"".join(parts)


def _resource(resource: Resource) -> bytes:
    return _field(_T1_BYTES, _attributes(_T1_BYTES, resource.attributes))


def _scope(scope: InstrumentationScope | None) -> bytes:
    if scope is None:
        return _field(_T1_BYTES, b"")
    body = _string(_T1_BYTES, scope.name) + _string(_T2_BYTES, scope.version or "")
    return _field(_T1_BYTES, body + _attributes(_T3_BYTES, scope.attributes))


def encode_request(spans: Sequence[ReadableSpan]) -> bytes:
    """The ExportTraceServiceRequest of `spans`: ResourceSpans per resource, ScopeSpans per scope, in the order met."""
    # Resource.__hash__ serializes its attributes to JSON on every call, so each resource object is hashed once
    # (a provider gives all its spans the same one); equal resources still share one group, as in the SDK's.
    grouped: dict[Resource, dict[InstrumentationScope | None, list[bytes]]] = {}
    by_identity: dict[int, dict[InstrumentationScope | None, list[bytes]]] = {}
    for span in spans:
        scopes = by_identity.get(id(span.resource))
        if scopes is None:
            scopes = by_identity[id(span.resource)] = grouped.setdefault(span.resource, {})
        scopes.setdefault(span.instrumentation_scope or None, []).append(_field(_T2_BYTES, _span(span)))
    request = []
    for resource, scopes in grouped.items():
        body = [_resource(resource)]
        for scope, encoded in scopes.items():
            scope_spans = _scope(scope) + b"".join(encoded)
            if scope is not None and scope.schema_url:
                scope_spans += _string(_T3_BYTES, scope.schema_url)
            body.append(_field(_T2_BYTES, scope_spans))
        if resource.schema_url:
            body.append(_string(_T3_BYTES, resource.schema_url))
        request.append(_field(_T1_BYTES, b"".join(body)))
    return b"".join(request)
