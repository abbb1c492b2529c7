"""A streamed chat completion (`stream: true`): the run's events as OpenAI's `chat.completion.chunk`s.

The stream is OpenAI's: `data:` events without a name, each one chunk, in this order:

- the role (`{"role": "assistant", "content": ""}`), once the run is admitted;
- the text as the model writes it, one chunk per delta; an agent with an output schema writes its object
  as one JSON text chunk once the run validated it (its output is a tool call, not text, until then);
- a chunk with an empty delta and `finish_reason: "stop"`, once the result is stored;
- with `stream_options.include_usage`, a chunk without choices whose `usage` is the run's tokens;
- `data: [DONE]`.

A run that fails after the first byte ends the stream with one `data: {"error": {...}}` event in OpenAI's
error shape and no `[DONE]`: the SDK raises APIError with that body, the stream's status being 200 already.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from .envelope import StreamRun
from .openai_wire import ChatCompletionChunk, ChunkChoice, ChunkDelta, CompletionUsage, openai_error
from .schemas import RunResponse
from .streaming import Completed, Failed, sse, text_of

#: The event that closes a successful stream, as OpenAI sends it.
DONE = b"data: [DONE]\n\n"


class Chunks:
    """The chunks of one streamed run: all carry its id (`chatcmpl-<run id>`), creation time and model."""

    def __init__(self, *, run_id: str, model: str) -> None:
        self.id = f"chatcmpl-{run_id}"
        self.model = model
        self.created = int(time.time())

    def choice(self, delta: ChunkDelta, *, finished: bool = False) -> bytes:
        """A chunk of the one choice."""
        choice = ChunkChoice(delta=delta, finish_reason="stop" if finished else None)
        return self._event(choices=[choice])

    def usage(self, result: RunResponse) -> bytes:
        """The chunk of the run's tokens, without choices."""
        return self._event(choices=[], usage=CompletionUsage.of(result.usage))

    def _event(self, **fields: Any) -> bytes:
        chunk = ChatCompletionChunk(id=self.id, created=self.created, model=self.model, **fields)
        return sse(None, chunk.model_dump(mode="json"))


async def chunks(run: StreamRun, *, model: str, include_usage: bool) -> AsyncIterator[bytes]:
    """The run's chunks, ending in `[DONE]`, or in an error event when the run fails."""
    stream = Chunks(run_id=run.run_id, model=model)
    yield stream.choice(ChunkDelta(role="assistant", content=""))
    streamed = False
    async for event in run.events():
        if isinstance(event, Failed):
            _, body = openai_error(event.error)
            yield sse(None, {"error": body.model_dump()})
            return
        if isinstance(event, Completed):
            rest = _unstreamed(event.response.output, streamed=streamed)
            if rest:
                yield stream.choice(ChunkDelta(content=rest))
            yield stream.choice(ChunkDelta(), finished=True)
            if include_usage:
                yield stream.usage(event.response)
            yield DONE
            return
        text = text_of(event)
        if text:
            streamed = True
            yield stream.choice(ChunkDelta(content=text))


def _unstreamed(output: Any, *, streamed: bool) -> str:
    """What of the output the text deltas did not carry: a structured output's JSON, or a text never streamed."""
    if not isinstance(output, str):
        return json.dumps(output, ensure_ascii=False)
    return "" if streamed else output
