"""The support bot's agent: its tools keep tickets in Agentry's records, cache look-ups, ask a status API.

The AgentDeployment names it with `spec.agent.code.entrypoint: support_bot.agent:agent`. Each run gets an
`AgentryDeps` (`ctx.deps`): the agent's database records, its cache, the external API of
`spec.services.externalAPI`, and the verified caller.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Literal

from pydantic import BaseModel
from pydantic_ai import Agent, RunContext

from agent_runtime.sdk import AgentryDeps
from agent_runtime.services.breaker import CircuitOpenError
from agent_runtime.services.http import ExternalApiError

#: The records collection the tickets live in.
TICKETS = "tickets"
#: Seconds a looked-up ticket stays in the cache; a ticket's own tools drop the entry when they change it.
LOOKUP_TTL_SECONDS = 60.0
#: A ticket id: `T-` and 8 hex digits (never a glob pattern, so invalidating its cache entry drops only it).
TICKET_ID = re.compile(r"T-[0-9a-f]{8}")

Severity = Literal["low", "normal", "high"]


class Ticket(BaseModel):
    """A support ticket as the records store keeps it."""

    id: str
    title: str
    severity: Severity = "normal"
    status: Literal["open", "closed"] = "open"
    reporter: str
    """The caller's subject (their token's `sub`): personal data, so it stays in the records, not in logs."""


# No model in the code: the AgentDeployment's spec.agent.model names it (with its endpoint and API key Secret,
# and the operator checks its provider), tests pass their own (TestModel, FunctionModel).
agent = Agent(
    deps_type=AgentryDeps,
    name="support-bot",
    instructions=(
        "You are a support desk. File a ticket for each problem the user reports (one per problem), "
        "look tickets up by id when asked, and check a service's status before blaming it."
    ),
)


@agent.tool
async def file_ticket(ctx: RunContext[AgentryDeps], title: str, severity: Severity = "normal") -> Ticket:
    """File a new support ticket and return it with its id."""
    ticket = Ticket(id=f"T-{uuid.uuid4().hex[:8]}", title=title, severity=severity, reporter=ctx.deps.caller.subject)
    await ctx.deps.database.put(TICKETS, ticket.id, ticket.model_dump())
    ctx.deps.log.info("filed ticket %s (%s)", ticket.id, ticket.severity)
    return ticket


@agent.tool
async def look_up_ticket(ctx: RunContext[AgentryDeps], ticket_id: str) -> Ticket | str:
    """The ticket with this id (`T-` and 8 hex digits, as file_ticket returns it)."""
    if not TICKET_ID.fullmatch(ticket_id):
        return _not_an_id(ticket_id)
    cached = await ctx.deps.cache.get(f"ticket:{ticket_id}")
    if cached is not None:
        return Ticket.model_validate_json(cached)
    stored = await ctx.deps.database.get(TICKETS, ticket_id)
    if stored is None:
        return f"there is no ticket {ticket_id}"
    ticket = Ticket.model_validate(stored)
    await ctx.deps.cache.set(f"ticket:{ticket_id}", ticket.model_dump_json(), ttl_seconds=LOOKUP_TTL_SECONDS)
    return ticket


@agent.tool
async def close_ticket(ctx: RunContext[AgentryDeps], ticket_id: str) -> Ticket | str:
    """Close the ticket with this id."""
    if not TICKET_ID.fullmatch(ticket_id):
        return _not_an_id(ticket_id)
    stored = await ctx.deps.database.get(TICKETS, ticket_id)
    if stored is None:
        return f"there is no ticket {ticket_id}"
    ticket = Ticket.model_validate(stored).model_copy(update={"status": "closed"})
    await ctx.deps.database.put(TICKETS, ticket.id, ticket.model_dump())
    await ctx.deps.cache.invalidate(f"ticket:{ticket_id}")
    return ticket


@agent.tool
async def service_status(ctx: RunContext[AgentryDeps], service: str) -> str:
    """The current status of one of our services (e.g. `email`, `billing`), from the status API."""
    api = ctx.deps.external_api
    if api is None:
        return "unknown: no status API is configured"
    try:
        answer = await api.request("GET", f"/status/{service}")
    except (ExternalApiError, CircuitOpenError) as error:
        return f"unknown: the status API did not answer ({error})"
    if answer.status_code != 200:
        return f"unknown: the status API answered {answer.status_code}"
    return json.dumps(answer.json())


def _not_an_id(text: str) -> str:
    # An answer, not ModelRetry: the model learns what an id looks like and the run goes on.
    return f"{text!r} is not a ticket id (T- and 8 hex digits, as file_ticket returns it)"
