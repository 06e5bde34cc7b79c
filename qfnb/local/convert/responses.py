"""OpenAI's Responses API (``/v1/responses``, ``/v2/responses``) as a converter: a parsed
:class:`~qfnb.protocol.wires.responses.request.ResponsesRequest` and its stored conversation become the engine's
ask (:func:`responses_ask`), and the answer becomes a ``response`` object or its stream of
semantic events. The finished response goes to ``keep`` (the route stores it)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qfnb.local.convert.answer import Answer, Tally, answer_of, answered, named_event, turn_of, until_broken, written
from qfnb.local.convert.asks import conversation, structured_output, tool_specs
from qfnb.local.engines.api import ServedLike
from qfnb.local.engines.ask import ChatAsk, Sampling
from qfnb.local.engines.base import Delta
from qfnb.protocol.wires.chat.bodies import ResponsesNamedChoice
from qfnb.protocol.wires.chat.ranges import RESPONSES_ENGINE
from qfnb.protocol.wires.codec.sse import encode_event
from qfnb.protocol.wires.responses.answer import ResponseEvents, output_items, response_object
from qfnb.protocol.wires.responses.request import ResponsesRequest, chat_messages

__all__ = ["ResponsesRender", "responses_ask"]


def responses_ask(req: ResponsesRequest, history: Sequence[Mapping[str, Any]], lane: str,
                  cache_key: str | None = None) -> ChatAsk:
    """The ask of a Responses request over ``history`` (the stored conversation's items, oldest
    first): ``instructions`` as the system turn, then every item in chat turns; its function tools,
    ``tool_choice`` and ``text.format``; ``max_output_tokens`` as the engine's ``max_tokens``."""
    items = [*history, *(item.model_dump(by_alias=True, exclude_none=True) for item in req.items())]
    choice = req.tool_choice
    named = choice.name if isinstance(choice, ResponsesNamedChoice) else None
    tools, tool_choice = tool_specs((fn.function() for fn in req.functions()),
                                    choice if isinstance(choice, str) else None, named if req.tools else None)
    fmt = req.text.format if req.text is not None else None
    output = structured_output(fmt.type, fmt.schema_, fmt.name) if fmt is not None else structured_output(None)
    return ChatAsk(model=req.model, messages=conversation(chat_messages(items, req.instructions), "input"),
                   sampling=Sampling.of(req.model_dump(include=set(RESPONSES_ENGINE))), tools=tools,
                   tool_choice=tool_choice, parallel_tool_calls=req.parallel_tool_calls, lane=lane,
                   cache_key=cache_key, **output)


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

    def events(self, deltas: AsyncIterator[tuple[int, Delta]], tallies: Sequence[Tally],
               served: ServedLike) -> AsyncIterator[bytes]:
        writer = ResponseEvents(self.rid, self.data, answered(str(self.data["model"]), served), self.created)
        return until_broken(self._events(writer, deltas, tallies),
                            lambda message: named_event(writer.failed(message)), "responses")

    async def _events(self, writer: ResponseEvents, deltas: AsyncIterator[tuple[int, Delta]],
                      tallies: Sequence[Tally]) -> AsyncGenerator[bytes, None]:
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
        finally:
            answer = answer_of(seen, tallies[0])  # counted once, also when the client cut the stream
        done, final = writer.finish(turn_of(answer))
        if self.cancelled():
            final["status"] = "cancelled"
        self.keep(final)
        for kind, event in done:
            yield encode_event(event, event=kind)
