"""Reading request bodies: bounded in size, parsed as JSON, validated into a wire model.

Every defect becomes a 4xx ApiError whose message names the field, never a 500.
"""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from agentry_api.base import error_lines

from .errors import ApiError

M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request, *, max_bytes: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes `max_bytes` (before it is all read).

    Content-Length is checked first, but a chunked body has none, so the stream is counted too.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_model(raw: bytes, model: type[M]) -> M:
    """The body as `model`: 400 when it is not JSON, 422 naming each bad field when it does not fit."""
    if not raw.strip():
        raise ApiError(400, "invalid_json", "request body is empty (expected a JSON object)")
    depth = nesting_depth(raw)
    if depth > MAX_NESTING:
        raise ApiError(
            400,
            "invalid_json",
            f"request body is not valid JSON for this API: nested {depth} levels deep (at most {MAX_NESTING})",
        )
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ApiError(422, "invalid_request", "(root): expected a JSON object")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise ApiError(422, "invalid_request", "; ".join(error_lines(exc))) from None


#: Deepest nesting of arrays and objects accepted. Checked before parsing, so that neither the parser nor
#: anything walking the document later (validation, redaction) can run out of stack, whatever the
#: interpreter's recursion limit happens to be.
MAX_NESTING = 64


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of `[` and `{` outside strings (a linear scan, no parsing)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "body_too_large", f"request body is larger than {max_bytes} bytes")
