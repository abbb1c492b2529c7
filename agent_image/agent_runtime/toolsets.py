"""Agentry's toolsets for each run (spec.agent.toolsets): the built-in tools and, per run, the MCP servers'.

They are given to the agent per run (`Agent.run(toolsets=...)`), never baked into it, so a user's own Agent object
is left as its code made it, and the same toolsets serve both kinds of agent. The tools a toolset's
`requireApproval` names are wrapped so that calling them pauses the run for a person's decision (execution.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from pydantic_ai.toolsets import AbstractToolset

from agentry_api.v1alpha1 import AgentSpec

from .mcp import McpToolsets
from .services.container import Services
from .services.protocols import ServiceHealth
from .tools import builtin_toolset


class AgentToolsets:
    """The toolsets the spec lists, as each run gets them: the built-in ones, then the MCP servers' (mcp.py)."""

    def __init__(self, *, spec: AgentSpec, services: Services, mcp: McpToolsets | None = None) -> None:
        listed = spec.effective_toolsets()
        self.static: list[AbstractToolset[Any]] = [
            needing_approval(
                builtin_toolset(services, names=toolset.builtin.tools, max_retries=spec.retries),
                toolset.require_approval,
            )
            for toolset in listed
            if toolset.builtin is not None
        ]
        self.mcp = mcp or McpToolsets([])
        self._mcp_approvals = [toolset.require_approval for toolset in listed if toolset.mcp is not None]

    async def start(self) -> None:
        """Connect the MCP servers that are shared by runs; one that is down does not fail the start."""
        await self.mcp.start()

    async def close(self) -> None:
        """Close the MCP sessions."""
        await self.mcp.close()

    async def check(self) -> list[ServiceHealth]:
        """The MCP servers' health (`mcp:<name>`), degraded when down or slow."""
        return await self.mcp.check()

    @asynccontextmanager
    async def for_run(self, *, bearer_token: str | None) -> AsyncIterator[list[AbstractToolset[Any]]]:
        """The toolsets of one run; `bearer_token` is the caller's, for servers that act as the caller.

        The MCP servers are connected before the model is asked; McpToolsetError when one cannot serve the run.
        """
        async with self.mcp.for_run(bearer_token=bearer_token) as servers:
            approvals = self._mcp_approvals if len(self._mcp_approvals) == len(servers) else [[]] * len(servers)
            yield [*self.static, *(needing_approval(t, names) for t, names in zip(servers, approvals, strict=True))]


def needing_approval(toolset: AbstractToolset[Any], names: Sequence[str]) -> AbstractToolset[Any]:
    """The toolset, its calls of `names` (as the model sees them) paused for a person's approval (deferred)."""
    if not names:
        return toolset
    wanted = frozenset(names)
    return toolset.approval_required(lambda ctx, tool_def, args: tool_def.name in wanted)
