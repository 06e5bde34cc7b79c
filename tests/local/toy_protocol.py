"""A toy fifth wire protocol, as one converter module (this file) plus one route table (in
``test_toy_protocol.py``): ``{"model", "say", "words"}`` in, ``{"heard", "words", "done"}`` or
``said:`` lines out. It shows what a new protocol takes: nothing in the serving flow changes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from qfnb.local.convert.answer import Answer, Tally
from qfnb.local.engines.api import ServedLike
from qfnb.local.engines.ask import ChatAsk, Sampling
from qfnb.local.engines.base import Delta


class ToyRequest(BaseModel):
    model: str
    say: str
    words: int | None = None
    stream: bool = False


def chat_ask(req: ToyRequest, lane: str) -> ChatAsk:
    return ChatAsk(model=req.model, messages=({"role": "user", "content": req.say},),
                   sampling=Sampling(max_tokens=req.words), lane=lane)


@dataclass(frozen=True)
class ToyRender:
    stream: bool

    def body(self, answers: Sequence[Answer], served: ServedLike) -> dict[str, Any]:
        (answer,) = answers
        return {"heard": answer.text, "words": answer.tally.completion_tokens, "done": answer.finish,
                "by": served.name}

    async def events(self, deltas: AsyncIterator[tuple[int, Delta]], tallies: Sequence[Tally],
                     served: ServedLike) -> AsyncIterator[bytes]:
        (tally,) = tallies
        async for _, delta in deltas:
            tally.add(delta)
            if delta.text:
                yield f"said: {delta.text.strip()}\n".encode()
        yield f"done: {tally.finish} after {tally.completion_tokens}\n".encode()
