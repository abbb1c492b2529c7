"""Agentry's toolsets for each run (spec.agent.toolsets): the built-in tools and, per run, the MCP servers'.

They are given to the agent per run (`Agent.run(toolsets=...)`), never baked into it, so a user's own Agent object
is left as its code made it, and the same toolsets serve both kinds of agent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pydantic_ai.toolsets import AbstractToolset

from agentry_api.v1alpha1 import AgentSpec

from .services.container import Services
from .tools import builtin_toolset


class AgentToolsets:
    """The toolsets the spec lists, as each run gets them."""

    def __init__(self, *, spec: AgentSpec, services: Services) -> None:
        self.static: list[AbstractToolset[Any]] = [
            builtin_toolset(services, names=toolset.builtin.tools, max_retries=spec.retries)
            for toolset in spec.effective_toolsets()
            if toolset.builtin is not None
        ]

    @asynccontextmanager
    async def for_run(self, *, bearer_token: str | None) -> AsyncIterator[list[AbstractToolset[Any]]]:
        """The toolsets of one run; `bearer_token` is the caller's, for servers that act as the caller."""
        yield list(self.static)
