"""Running the agent for one prompt: within the request timeout, under the spec's usage limits.

An output schema is enforced inside the run: the agent's output validator (built in agent.py) checks
each answer and asks the model again, up to spec.agent.outputRetries times, before the run fails.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from pydantic_ai.usage import UsageLimits

from .agent import RuntimeAgent
from .deps import Deps


@dataclass(frozen=True)
class RunOutcome:
    """What one successful run produced."""

    run_id: str
    output: Any
    input_tokens: int
    output_tokens: int
    requests: int
    latency_ms: float

    @property
    def tokens(self) -> int:
        """Input plus output tokens, what the per-principal token limit counts."""
        return self.input_tokens + self.output_tokens


def user_prompt(prompt: str, context: dict[str, Any] | None) -> str | Sequence[str]:
    """The prompt, followed by the context as a JSON block when there is one."""
    if not context:
        return prompt
    return [prompt, "Context (JSON):\n" + json.dumps(context, ensure_ascii=False, sort_keys=True)]


class AgentRunner:
    """Runs the agent with the process's deps; errors propagate for the envelope to map."""

    def __init__(self, *, agent: RuntimeAgent, deps: Deps, limits: UsageLimits, timeout: float) -> None:
        self.agent = agent
        self.deps = deps
        self.limits = limits
        self.timeout = timeout

    async def start(self) -> None:
        """Enter the agent, so the model provider's HTTP client is reused across runs."""
        await self.agent.__aenter__()

    async def close(self) -> None:
        """Leave the agent: the provider's HTTP client closes cleanly."""
        await self.agent.__aexit__(None, None, None)

    async def run(
        self, *, prompt: str, context: dict[str, Any] | None, admitted: AbstractAsyncContextManager[None]
    ) -> RunOutcome:
        """Wait to be `admitted`, then run once, both within the timeout: no request waits longer than it may take.

        The run id is a random UUID so ids reveal nothing about volume or order; the latency is the run's own,
        without the wait.
        """
        async with asyncio.timeout(self.timeout), admitted:
            started = time.perf_counter()
            result = await self.agent.run(user_prompt(prompt, context), deps=self.deps, usage_limits=self.limits)
            latency_ms = (time.perf_counter() - started) * 1000
        usage = result.usage
        return RunOutcome(
            run_id=uuid.uuid4().hex,
            output=result.output,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            requests=usage.requests,
            latency_ms=latency_ms,
        )
