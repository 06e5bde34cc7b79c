"""Anthropic's Messages API (``/v1/messages``) as a converter: a parsed
:class:`~qfnb.protocol.wires.anthropic.messages.MessagesRequest` becomes the engine's ask (:func:`messages_ask`),
and the answer a ``message`` object or Anthropic's event stream; ``count_tokens`` answers the
prompt's tokens as the engine counts them."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from qfnb.local.convert.answer import Answer, Tally, answer_of, named_event, turn_of, until_broken, written
from qfnb.local.convert.asks import conversation, structured_output, tool_specs
from qfnb.local.engines.api import ServedLike
from qfnb.local.engines.ask import ChatAsk, Sampling
from qfnb.local.engines.base import Delta
from qfnb.protocol.wires.anthropic.messages import CountRequest, MessageEvents, MessagesRequest, message_object
from qfnb.protocol.wires.chat.bodies import (
    AnthropicMessage,
    AnthropicText,
    AnthropicToolResult,
    AnthropicToolUse,
)
from qfnb.protocol.wires.chat.ranges import MESSAGES_ENGINE
from qfnb.protocol.wires.codec.sse import encode_event

__all__ = ["CountRender", "MessagesRender", "messages_ask"]


def messages_ask(req: CountRequest, lane: str) -> ChatAsk:
    """The ask of a Messages request (a count_tokens body: one token, to count the prompt):
    ``system`` first; an assistant's ``tool_use`` blocks as its tool calls, a user's
    ``tool_result`` blocks as tool turns (before its text); ``max_tokens``, ``stop_sequences`` and
    the sampling fields under the engine's names."""
    system = req.system_text()
    turns: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for m in req.messages:
        turns += _turns(m)
    choice = req.tool_choice
    tools, tool_choice = tool_specs(
        (fn.function() for fn in req.functions()),
        {"any": "required"}.get(choice.type, choice.type) if choice else None,
        choice.name if choice is not None and choice.type == "tool" and req.tools else None)
    parallel = choice.disable_parallel_tool_use if choice is not None and req.tools else None
    fmt = req.output_config.format if req.output_config is not None else None
    output = structured_output("json_schema", fmt.schema_, "output") if fmt else structured_output(None)
    sampling = (Sampling.of(req.model_dump(include=set(MESSAGES_ENGINE))) if isinstance(req, MessagesRequest)
                else Sampling(max_tokens=1))
    return ChatAsk(model=req.model, messages=conversation(turns, "messages"), sampling=sampling, tools=tools,
                   tool_choice=tool_choice, parallel_tool_calls=None if parallel is None else not parallel,
                   lane=lane, **output)


def _turns(message: AnthropicMessage) -> list[dict[str, Any]]:
    """One Anthropic turn as the engine's turns (another model's thinking blocks left out)."""
    if isinstance(message.content, str):
        return [{"role": message.role, "content": message.content}]
    texts = [b.text for b in message.content if isinstance(b, AnthropicText)]
    if message.role == "assistant":
        calls = [{"id": b.id, "type": "function", "function": {
            "name": b.name, "arguments": json.dumps(b.input or {}, ensure_ascii=False)}}
            for b in message.content if isinstance(b, AnthropicToolUse)]
        answer: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
        return [answer | {"tool_calls": calls}] if calls else [answer]
    results = [{"role": "tool", "tool_call_id": b.tool_use_id, "content": _result_text(b)}
               for b in message.content if isinstance(b, AnthropicToolResult)]
    return results + ([{"role": "user", "content": "\n".join(texts)}] if texts else [])


def _result_text(block: AnthropicToolResult) -> str:
    content = block.content
    text = content if isinstance(content, str) else "\n".join(b.text for b in content or ())
    return f"Error: {text}" if block.is_error else text


@dataclass(frozen=True)
class MessagesRender:
    """A ``message`` object or its stream (``message_start`` … ``message_stop``). ``model``: the
    name asked for (answered back); ``stops``: the request's stop sequences."""

    model: str
    mid: str
    stream: bool = False
    stops: tuple[str, ...] = ()

    def body(self, answers: Sequence[Answer], served: ServedLike) -> dict[str, object]:
        return message_object(self.mid, self.model, turn_of(answers[0]), self.stops)

    def events(self, deltas: AsyncIterator[tuple[int, Delta]], tallies: Sequence[Tally],
               served: ServedLike) -> AsyncIterator[bytes]:
        writer = MessageEvents(self.mid, self.model, self.stops)
        return until_broken(self._events(writer, deltas, tallies),
                            lambda message: named_event(writer.failed(message)), "messages")

    async def _events(self, writer: MessageEvents, deltas: AsyncIterator[tuple[int, Delta]],
                      tallies: Sequence[Tally]) -> AsyncGenerator[bytes, None]:
        seen: list[Delta] = []
        try:
            async for _, delta in deltas:
                seen.append(delta)
                if len(seen) == 1:  # the first delta carries the prompt's token count
                    for kind, event in writer.start(delta.prompt_tokens - delta.cached_tokens):
                        yield encode_event(event, event=kind)
                for kind, event in written(writer, delta):
                    yield encode_event(event, event=kind)
        finally:
            answer = answer_of(seen, tallies[0])  # counted once, also when the client cut the stream
        closing = writer.start() if not seen else []
        for kind, event in closing + writer.finish(turn_of(answer)):
            yield encode_event(event, event=kind)


@dataclass(frozen=True)
class CountRender:
    """``count_tokens``: the prompt's tokens as the engine counted them (the ask generates one token)."""

    stream: bool = False

    def body(self, answers: Sequence[Answer], served: ServedLike) -> dict[str, object]:
        return {"input_tokens": answers[0].tally.prompt}

    def events(self, deltas: AsyncIterator[tuple[int, Delta]], tallies: Sequence[Tally],
               served: ServedLike) -> AsyncIterator[bytes]:
        raise NotImplementedError("count_tokens is answered whole")
