"""The caller as the runtime sees it, and the one error type the security envelope raises."""

from __future__ import annotations

from dataclasses import dataclass

#: The protection space named in every WWW-Authenticate challenge.
REALM = "agentry"


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

    def www_authenticate(self, *, token_sent: bool) -> str:
        """The WWW-Authenticate header value for the response (RFC 6750 section 3).

        A request that sent no bearer token gets the bare challenge, without an error code, as the
        RFC asks; the description is this error's own message (never token content), restricted to
        the characters a quoted error_description may hold.
        """
        if self.status_code == 401 and not token_sent:
            return f'Bearer realm="{REALM}"'
        error = "invalid_token" if self.status_code == 401 else "insufficient_scope"
        description = "".join(c for c in self.message if c.isascii() and c.isprintable() and c not in '"\\')
        return f'Bearer realm="{REALM}", error="{error}", error_description="{description}"'
