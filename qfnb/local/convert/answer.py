"""What every protocol's render reads: an answer collected from its :class:`Delta` s (and the turn
the Responses and Messages renders read of it), the tally kept while one streams, and the
:class:`Render` face the serving flow calls."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from qfnb.local.engines.api import ServedLike
from qfnb.local.engines.base import Delta
from qfnb.protocol.wires.anthropic.messages import MessageEvents
from qfnb.protocol.wires.chat.turn import Turn
from qfnb.protocol.wires.codec.sse import encode_event
from qfnb.protocol.wires.responses.answer import ResponseEvents

log = logging.getLogger("qfnb.local.inference")

#: what a client is told of an answer broken off on the platform's side, in its wire's error event (retryable;
#: the cause goes to the log, never to the wire)
BROKE_OFF = "the model engine failed mid-answer; the answer is incomplete, retry the request"


def named_event(pair: tuple[str, dict[str, Any]]) -> bytes:
    """A ``(kind, event)`` pair of the Responses and Messages writers as one SSE event named ``kind``."""
    kind, event = pair
    return encode_event(event, event=kind)


async def until_broken(events: AsyncGenerator[bytes, None], broken: Callable[[str], bytes],
                       what: str) -> AsyncIterator[bytes]:
    """A render's ``events`` passed on; when the answer breaks off under them (the engine failed mid-answer),
    the failure is logged as ``what``'s and the stream ends with ``broken(BROKE_OFF)``, the wire's error
    event. A client that leaves closes ``events`` at once (their counts are made in their ``finally``)."""
    try:
        async for event in events:
            yield event
    except Exception:
        log.exception("%s stream failed", what)
        yield broken(BROKE_OFF)
    finally:
        await events.aclose()

__all__ = ["Answer", "Render", "Tally", "answer_of", "answered", "merge_tool_calls", "total_usage", "turn_of",
           "usage_of", "written"]


def usage_of(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class Tally:
    """Token counts and finish reason of an answer so far, kept as deltas arrive (O(1) each)."""

    __slots__ = ("cached", "completion", "finish", "pieces", "prompt", "schema_miss")

    def __init__(self) -> None:
        self.prompt = self.completion = self.pieces = self.cached = 0
        self.finish: str | None = None
        #: why the answer fails its JSON schema after the resamples (None: it fits, or had none)
        self.schema_miss: str | None = None

    def add(self, delta: Delta) -> None:
        """Each count the largest seen (they are cumulative), the last finish reason and schema miss
        given (tests, not ``max()`` calls: this runs for every delta)."""
        if delta.prompt_tokens > self.prompt:
            self.prompt = delta.prompt_tokens
        if delta.completion_tokens > self.completion:
            self.completion = delta.completion_tokens
        if delta.cached_tokens > self.cached:
            self.cached = delta.cached_tokens
        if delta.text:
            self.pieces += 1
        if delta.finish_reason:
            self.finish = delta.finish_reason
        if delta.schema_miss:
            self.schema_miss = delta.schema_miss

    @property
    def completion_tokens(self) -> int:
        """Tokens generated (the pieces streamed when the engine did not count them)."""
        return self.completion or self.pieces

    def usage(self) -> dict[str, int]:
        return usage_of(self.prompt, self.completion_tokens)


def merge_tool_calls(calls: list[dict[str, Any]], fragments: list[dict[str, Any]]) -> None:
    """Add streamed ``tool_calls`` fragments to the calls assembled so far (by ``index``)."""
    for frag in fragments:
        i = int(frag.get("index", len(calls)))
        while len(calls) <= i:
            calls.append({"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
        call, fn = calls[i], frag.get("function") or {}
        call["id"] = frag.get("id") or call["id"] or f"call_{i}"
        call["function"]["name"] += fn.get("name") or ""
        call["function"]["arguments"] += fn.get("arguments") or ""


@dataclass
class Answer:
    """One whole answer (one choice): its text, assembled tool calls, logprobs and tally."""

    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)

    @property
    def finish(self) -> str | None:
        """The engine's finish reason (``base.FINISH_*``)."""
        return self.tally.finish


def answer_of(deltas: Iterable[Delta], tally: Tally | None = None) -> Answer:
    """The answer ``deltas`` make up (its counts kept in ``tally`` when given: a stream's, which the
    serving flow reads)."""
    answer = Answer() if tally is None else Answer(tally=tally)
    parts = []
    for d in deltas:
        answer.tally.add(d)
        parts.append(d.text)
        if d.tool_calls:
            merge_tool_calls(answer.tool_calls, d.tool_calls)
        if d.logprobs:
            answer.logprobs += d.logprobs
    answer.text = "".join(parts)
    return answer


def turn_of(answer: Answer) -> Turn:
    """What the Responses and Messages renders read of one collected answer (one with tool calls
    finished with ``tool_calls``)."""
    tally = answer.tally
    return Turn(text=answer.text, tool_calls=list(answer.tool_calls),
                finish="tool_calls" if answer.tool_calls else tally.finish, input_tokens=tally.prompt,
                output_tokens=tally.completion_tokens, cached_tokens=tally.cached)


def answered(asked: str, served: ServedLike) -> str:
    """The model an answer names: the one asked for when it names the served model, else the served one's name."""
    return asked if asked.lower() in (served.name.lower(), served.endpoint.lower()) else served.name


def written(writer: MessageEvents | ResponseEvents, delta: Delta) -> list[tuple[str, dict[str, Any]]]:
    """The events one delta makes in a Messages or Responses stream: its text, its tool-call fragments."""
    return [*(writer.text(delta.text) if delta.text else ()),
            *(writer.tool_fragments(delta.tool_calls) if delta.tool_calls else ())]


def total_usage(tallies: Sequence[Tally]) -> dict[str, int]:
    """The usage of several choices to one prompt: the prompt once, every choice's tokens."""
    return usage_of(max((t.prompt for t in tallies), default=0), sum(t.completion_tokens for t in tallies))


class Render(Protocol):
    """How one protocol answers: a whole body, or the event stream of ``(choice index, delta)``
    pairs. ``events`` ends a stream broken on the platform's side with its wire's error event.

    ``events`` keeps each choice's counts in ``tallies`` (one :class:`Tally` a choice, made by the
    serving flow), by the stream's end at the latest, a stream cut mid-way included: the usage the
    platform counts (``/metrics``, the call's span) is read from them, so the counts are made once, by
    the render that puts them on the wire, not again per delta by the platform."""

    @property
    def stream(self) -> bool: ...

    def body(self, answers: Sequence[Answer], served: ServedLike) -> dict[str, Any]: ...

    def events(self, deltas: AsyncIterator[tuple[int, Delta]], tallies: Sequence[Tally],
               served: ServedLike) -> AsyncIterator[bytes]: ...
