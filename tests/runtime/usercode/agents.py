"""Small user agents, written as a user would: tools on RunContext.deps, a factory, an AgentApp with own deps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic_ai import Agent, RunContext

from agent_runtime.sdk import AgentApp, AgentryDeps, Database, Services

#: An agent with no model of its own: the spec's model (or the test's) is given per run.
agent: Agent[AgentryDeps, str] = Agent(deps_type=AgentryDeps, instructions="You file support tickets.")


@agent.tool
async def file_ticket(ctx: RunContext[AgentryDeps], title: str, email: str) -> str:
    """File a ticket for the caller; returns its id."""
    ticket_id = f"T-{ctx.deps.run_id[:8]}"
    ticket = {"title": title, "email": email, "by": ctx.deps.caller.subject, "run": ctx.deps.run_id}
    await ctx.deps.database.put("tickets", ticket_id, ticket)
    await ctx.deps.cache.set("last-ticket", ticket_id)
    ctx.deps.log.info("ticket filed")
    return ticket_id


@agent.tool
async def failing_tool(ctx: RunContext[AgentryDeps], reason: str) -> str:
    """A tool that always fails (the audit records the failed call)."""
    raise RuntimeError(f"cannot do that: {reason}")


#: An agent that takes no deps at all.
plain = Agent(output_type=str)


@plain.tool_plain
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@dataclass
class TicketDeps:
    """A user's own deps type: only what its tools need."""

    tickets: Database
    team: str


custom = Agent(deps_type=TicketDeps)


@custom.tool
async def count_tickets(ctx: RunContext[TicketDeps]) -> int:
    """How many tickets the team has."""
    return len(await ctx.deps.tickets.list("tickets"))


#: Health of the user's own dependency, switched by the tests.
CRM_UP = {"value": True}


async def crm_check() -> None:
    """Raises while the CRM is 'down'."""
    if not CRM_UP["value"]:
        raise ConnectionError("crm.example is not answering")


def build(services: Services) -> AgentApp[TicketDeps]:
    """A factory: given the services, the agent with its own deps and a health check."""
    return AgentApp(
        agent=custom,
        deps=lambda deps: TicketDeps(tickets=deps.database, team="support"),
        checks={"crm": crm_check},
    )


# --- entrypoints that cannot be served ----------------------------------------------------------

not_an_agent = 42
wrong_deps = Agent(deps_type=TicketDeps)
app_without_agent: Any = AgentApp(agent="nope")  # type: ignore[arg-type]


def returns_nothing(services: Services) -> None:
    """A factory that forgot to return."""


def raises(services: Services) -> Agent[None, str]:
    """A factory that fails."""
    raise ValueError("the CRM client needs CRM_URL")


async def async_factory(services: Services) -> Agent[None, str]:
    """A factory that is async (refused: the runtime calls it before its loop serves)."""
    return plain


def two_arguments(services: Services, other: int) -> Agent[None, str]:
    """A factory with the wrong signature."""
    return plain
