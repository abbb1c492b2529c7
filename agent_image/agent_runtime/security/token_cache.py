"""Principals of recently verified bearer tokens, so a client that repeats its token is not re-verified.

Verifying a JWT (header parse, signature, claims) costs far more than the rest of the security
envelope. A token's verdict cannot change before it expires, except by the clock passing `exp`, so a
successful verification is remembered until the earlier of the token's `exp` (no leeway) and
`max_age` seconds. Failures are never cached: a bad token is verified, and refused, every time.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections import OrderedDict
from collections.abc import Callable

from .auth import Principal


def token_expiry(authorization: str) -> float | None:
    """The `exp` claim of an already verified bearer token, or None when it has none."""
    try:
        payload = authorization.split(None, 1)[1].split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if not isinstance(exp, int | float):
        return None
    try:
        return float(exp)
    except OverflowError:  # an integer beyond a float: verification refuses such a token anyway
        return None


class VerifiedTokens:
    """A bounded LRU map from an Authorization header to its principal and the time it stops counting."""

    def __init__(self, *, capacity: int = 4096, max_age: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self.capacity = capacity
        self.max_age = max_age
        self._clock = clock
        self._entries: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def get(self, authorization: str) -> Principal | None:
        """The remembered principal, or None when unknown or no longer valid."""
        entry = self._entries.get(authorization)
        if entry is None:
            return None
        principal, until = entry
        if self._clock() >= until:
            del self._entries[authorization]
            return None
        self._entries.move_to_end(authorization)
        return principal

    def put(self, authorization: str, principal: Principal) -> None:
        """Remember a successful verification; a token without `exp` is not remembered."""
        exp = token_expiry(authorization)
        if exp is None:
            return
        self._entries[authorization] = (principal, min(exp, self._clock() + self.max_age))
        self._entries.move_to_end(authorization)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
