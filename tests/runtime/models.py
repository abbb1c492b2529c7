"""Scripted models for runtime tests (FunctionModel), named for what they make the agent do."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
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
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel


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

    What the model was shown of a conversation's history is thus in every answer; streamed, as one chunk.
    """

    async def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        *earlier, latest = user_prompts(messages)
        if "slow" in latest:
            await asyncio.sleep(1.5)
        return ModelResponse(parts=[TextPart(f"{latest} | seen: {' / '.join(earlier)}")])

    async def streamed(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        response = await answer(messages, info)
        yield str(response.parts[0].content)  # type: ignore[union-attr]

    return FunctionModel(answer, stream_function=streamed)


def streaming_words(words: Sequence[str], *, delay: float = 0.0, sent: list[str] | None = None) -> FunctionModel:
    """Streams `words` as text, `delay` seconds before each; `sent` collects the words streamed so far.

    A prompt containing `explode` fails after the first word (a model that breaks mid-stream).
    """

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        explode = "explode" in prompt_of(messages)
        for number, word in enumerate(words):
            if delay:
                await asyncio.sleep(delay)
            if explode and number == 1:
                raise RuntimeError("scripted failure mid-stream")
            if sent is not None:
                sent.append(word)
            yield word

    return FunctionModel(stream_function=stream)


def streaming_tool_then_words(tool: str, args: dict[str, Any], words: Sequence[str]) -> FunctionModel:
    """Streams a call of `tool` with `args`, then, once it returned, `words` as the answer (the same unstreamed)."""

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
        if not tool_returns(messages):
            yield {0: DeltaToolCall(name=tool, json_args=json.dumps(args), tool_call_id="call-1")}
            return
        for word in words:
            yield word

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if not tool_returns(messages):
            return ModelResponse(parts=[ToolCallPart(tool, json.dumps(args), tool_call_id="call-1")])
        return ModelResponse(parts=[TextPart("".join(words))])

    return FunctionModel(answer, stream_function=stream)


def streaming_structured(choose: Callable[[str, int], dict[str, Any]]) -> FunctionModel:
    """Streams a call of the output tool with `choose(prompt, attempt)` (attempt counts from 0 within a run)."""

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[DeltaToolCalls]:
        attempt = sum(1 for m in messages if isinstance(m, ModelResponse))
        arguments = json.dumps(choose(prompt_of(messages), attempt))
        yield {0: DeltaToolCall(name=info.output_tools[0].name, json_args=arguments, tool_call_id=f"out-{attempt}")}

    return FunctionModel(stream_function=stream)
