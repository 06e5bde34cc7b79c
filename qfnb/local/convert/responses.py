"""OpenAI's Responses API (``/v1/responses``, ``/v2/responses``) as a converter: a checked request
and its stored conversation become an OpenAI chat (:func:`qfnb.protocol.responses.chat_body`,
then the chat converter's ask), and the answer becomes a ``response`` object or its stream of
semantic events. The finished response goes to ``keep`` (the route stores it)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qfnb.local.convert.answer import Answer, answer_of, answered, turn_of, written
from qfnb.local.engines.api import ServedLike
from qfnb.local.engines.base import Delta
from qfnb.protocol.responses_answer import ResponseEvents, output_items, response_object
from qfnb.protocol.sse import encode_event

log = logging.getLogger("qfnb.local.inference")

__all__ = ["ResponsesRender"]


@dataclass(frozen=True)
class ResponsesRender:
    """A ``response`` object, or its events (``response.created`` … ``response.completed``).
    ``data``: the checked request; ``keep``: called with the finished response object."""

    rid: str
    data: Mapping[str, Any]
    created: int
    keep: Callable[[dict[str, Any]], None]
    stream: bool = False
    cancelled: Callable[[], bool] = field(default=lambda: False)

    def body(self, answers: Sequence[Answer], served: ServedLike) -> dict[str, Any]:
        turn = turn_of(answers[0])
        response = response_object(self.rid, self.data, answered(str(self.data["model"]), served), self.created,
                                   status="completed", output=output_items(turn), turn=turn)
        self.keep(response)
        return response

    async def events(self, deltas: AsyncIterator[tuple[int, Delta]], choices: int,
                     served: ServedLike) -> AsyncIterator[bytes]:
        writer = ResponseEvents(self.rid, self.data, answered(str(self.data["model"]), served), self.created)
        for kind, event in writer.start():
            yield encode_event(event, event=kind)
        seen: list[Delta] = []
        try:
            async for _, delta in deltas:
                seen.append(delta)
                for kind, event in written(writer, delta):
                    yield encode_event(event, event=kind)
                if self.cancelled():
                    break
        except Exception:
            log.exception("responses stream failed")
            kind, event = writer.failed("the model engine failed mid-answer; the answer is incomplete, retry")
            yield encode_event(event, event=kind)
            return
        done, final = writer.finish(turn_of(answer_of(seen)))
        if self.cancelled():
            final["status"] = "cancelled"
        self.keep(final)
        for kind, event in done:
            yield encode_event(event, event=kind)
