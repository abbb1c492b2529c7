"""The caller as the runtime sees it, and the one error type the security envelope raises."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: who it is and which roles its credential grants.

    `roles` may hold names the runtime does not know (an identity provider issues many); only the
    known ones grant permissions, and only when the agent allows them.
    """

    subject: str
    roles: frozenset[str]


class AuthError(Exception):
    """A request refused by authentication (401) or authorisation (403).

    `message` is safe to send to the caller: it says what is wrong with the credential but never
    repeats the token or anything about the key.
    """

    def __init__(self, status_code: int, message: str) -> None:
        if status_code not in (401, 403):
            raise ValueError(f"AuthError status must be 401 or 403, not {status_code}")
        super().__init__(message)
        self.status_code = status_code
        self.message = message

    @property
    def www_authenticate(self) -> str:
        """The WWW-Authenticate header value for the response (RFC 6750 section 3)."""
        error = "invalid_token" if self.status_code == 401 else "insufficient_scope"
        description = self.message.replace("\\", "").replace('"', "'")
        return f'Bearer realm="agentry", error="{error}", error_description="{description}"'
