"""Scripted models for runtime tests (FunctionModel), named for what they make the agent do."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel


def prompt_of(messages: Sequence[ModelMessage]) -> str:
    """The first user prompt of the run, as text."""
    for message in messages:
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, UserPromptPart):
                    content = part.content
                    return content if isinstance(content, str) else " ".join(str(c) for c in content)
    return ""


def tool_returns(messages: Sequence[ModelMessage]) -> list[ToolReturnPart]:
    """Every tool result the model has seen so far."""
    return [p for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, ToolReturnPart)]


def output_call(info: AgentInfo, args: dict[str, Any]) -> ModelResponse:
    """A response that calls the structured-output tool with `args`."""
    return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, json.dumps(args))])


def echo_model(*, delay: float = 0.0) -> FunctionModel:
    """Answers `echo: <prompt>` after `delay` seconds; a prompt containing `explode` raises."""

    async def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if delay:
            await asyncio.sleep(delay)
        prompt = prompt_of(messages)
        if "explode" in prompt:
            raise RuntimeError("scripted failure")
        return ModelResponse(parts=[TextPart(f"echo: {prompt}")])

    return FunctionModel(answer)


def structured_model(choose: Callable[[str, int], dict[str, Any]]) -> FunctionModel:
    """Calls the output tool with `choose(prompt, attempt)`; attempt counts from 0 within a run."""

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        attempt = sum(1 for m in messages if isinstance(m, ModelResponse))
        return output_call(info, choose(prompt_of(messages), attempt))

    return FunctionModel(answer)


def tool_then_text(tool: str, args: dict[str, Any]) -> FunctionModel:
    """Calls `tool` once, then answers with the JSON of what the tool returned."""

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returns = tool_returns(messages)
        if not returns:
            return ModelResponse(parts=[ToolCallPart(tool, json.dumps(args))])
        return ModelResponse(parts=[TextPart(json.dumps(returns[-1].content, default=str))])

    return FunctionModel(answer)


def user_prompts(messages: Sequence[ModelMessage]) -> list[str]:
    """Every user prompt the model has been shown, oldest first (a conversation's history included)."""
    prompts: list[str] = []
    for message in messages:
        if isinstance(message, ModelRequest):
            prompts.extend(str(p.content) for p in message.parts if isinstance(p, UserPromptPart))
    return prompts


def conversing_model() -> FunctionModel:
    """Answers `<prompt> | seen: <every earlier prompt, joined by ' / '>`; a prompt containing `slow` takes 1.5 s.

    What the model was shown of a conversation's history is thus in every answer.
    """

    async def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        *earlier, latest = user_prompts(messages)
        if "slow" in latest:
            await asyncio.sleep(1.5)
        return ModelResponse(parts=[TextPart(f"{latest} | seen: {' / '.join(earlier)}")])

    return FunctionModel(answer)
