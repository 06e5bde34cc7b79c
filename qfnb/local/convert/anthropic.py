"""Anthropic's Messages API (``/v1/messages``) as a converter: a checked request becomes an OpenAI
chat (:func:`qfnb.protocol.anthropic.chat_body`, then the chat converter's ask), and the answer a
``message`` object or Anthropic's event stream; ``count_tokens`` answers the prompt's tokens as
the engine counts them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from qfnb.local.convert.answer import Answer, answer_of, turn_of, written
from qfnb.local.engines.api import ServedLike
from qfnb.local.engines.base import Delta
from qfnb.protocol.anthropic import MessageEvents, message_object
from qfnb.protocol.sse import encode_event

log = logging.getLogger("qfnb.local.inference")

__all__ = ["CountRender", "MessagesRender"]


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

    async def events(self, deltas: AsyncIterator[tuple[int, Delta]], choices: int,
                     served: ServedLike) -> AsyncIterator[bytes]:
        writer = MessageEvents(self.mid, self.model, self.stops)
        seen: list[Delta] = []
        try:
            async for _, delta in deltas:
                if not seen:  # the first delta carries the prompt's token count
                    for kind, event in writer.start(delta.prompt_tokens - delta.cached_tokens):
                        yield encode_event(event, event=kind)
                seen.append(delta)
                for kind, event in written(writer, delta):
                    yield encode_event(event, event=kind)
        except Exception:
            log.exception("messages stream failed")
            kind, event = writer.failed("the model engine failed mid-answer; the answer is incomplete, retry")
            yield encode_event(event, event=kind)
            return
        closing = writer.start() if not seen else []
        for kind, event in closing + writer.finish(turn_of(answer_of(seen))):
            yield encode_event(event, event=kind)


@dataclass(frozen=True)
class CountRender:
    """``count_tokens``: the prompt's tokens as the engine counted them (the ask generates one token)."""

    stream: bool = False

    def body(self, answers: Sequence[Answer], served: ServedLike) -> dict[str, object]:
        return {"input_tokens": answers[0].tally.prompt}

    def events(self, deltas: AsyncIterator[tuple[int, Delta]], choices: int,
               served: ServedLike) -> AsyncIterator[bytes]:
        raise NotImplementedError("count_tokens is answered whole")
