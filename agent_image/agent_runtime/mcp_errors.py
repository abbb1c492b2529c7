"""Why an MCP toolset failed a run, kept apart from the MCP client so errors.py can map it without importing it."""

from __future__ import annotations

from typing import Literal

#: unavailable: no connection or it broke; timeout: slower than timeoutSeconds; refused: the server answered
#: with an error; no_token: the toolset forwards the caller's bearer token and the request has none.
McpFailure = Literal["unavailable", "timeout", "refused", "no_token"]


class McpToolsetError(Exception):
    """An MCP toolset could not serve a run: the run fails instead of the model seeing a retry prompt.

    The message names the toolset and what went wrong, never a header value or a token: it goes to the caller.
    """

    def __init__(self, *, toolset: str, failure: McpFailure, message: str) -> None:
        super().__init__(f"MCP toolset '{toolset}' {message}")
        self.toolset = toolset
        self.failure = failure
        self.message = str(self)
