"""A schema-constrained answer caught in a loop is asked again, with a frequency penalty.

A small model decoding greedily under a JSON schema's grammar can repeat one sentence inside a
string value until ``max_tokens`` ends the answer mid-string: the client gets no valid object
(OpenAI's SDK raises ``LengthFinishReasonError``). The grammar cannot end a string the schema lets
run on, but a penalty on the tokens already used does: the same request with a frequency penalty
of :data:`PENALTY` closed the object in 38 tokens where it had looped to the cap.

:func:`guarded` watches an answer's text. When the string being written ends in the same span
(:data:`MIN_SPAN` to :data:`MAX_SPAN` characters, words in it) :data:`REPEATS` times in a row,
the answer is dropped and asked again once with the penalty; its usage counts both generations.

A streamed answer cannot be dropped: the client already holds its start. :func:`streamed` stops
its generation there instead and asks the engine for the rest (:meth:`~.api.Engine.resume`): the
same turns with the text sent so far opened as the reply, the penalty on, under the grammar of
what may still follow it, so the whole stream is still one value under the schema. Where the
engine cannot write that rest, the stream goes on as it is.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Callable

from qfnb.local.engines.api import Engine
from qfnb.local.engines.ask import Ask, ChatAsk
from qfnb.local.engines.base import Delta, aclose

__all__ = ["MAX_SPAN", "MIN_SPAN", "PENALTY", "REPEATS", "StringTail", "guarded", "penalised", "streamed",
           "whole_answer"]

log = logging.getLogger("qfnb.local.engines")

#: the shortest and longest repeated span that counts as a loop (characters)
MIN_SPAN, MAX_SPAN = 12, 400
#: how many times in a row the span must stand at the end of the string
REPEATS = 3
#: the frequency penalty of the second attempt (at least)
PENALTY = 1.0
#: the characters of a string a loop can span (its last ones are all :class:`StringTail` keeps)
_WINDOW = MAX_SPAN * REPEATS


class StringTail:
    """The JSON string an answer is writing, read as its text streams in (its last characters: as many as a
    loop can span)."""

    def __init__(self) -> None:
        self.inside = False
        self._escaped = False
        self.text = ""

    def feed(self, text: str) -> None:
        for ch in text:
            self._feed(ch)

    def _feed(self, ch: str) -> None:
        if not self.inside:
            if ch == '"':
                self.inside, self.text = True, ""
            return
        if self._escaped:
            self._escaped = False
        elif ch == "\\":
            self._escaped = True
        elif ch == '"':
            self.inside = False
            return
        self.text += ch  # CPython grows a string held once in place
        if len(self.text) > 2 * _WINDOW:
            self.text = self.text[-_WINDOW:]

    def loop_end(self, text: str) -> int | None:
        """Feed ``text`` a character at a time; where the string comes to :meth:`loops`, how many of its
        characters were read (the rest are not), else None (all were). The place depends on the text only,
        not on how it was cut into pieces."""
        for i, ch in enumerate(text):
            self._feed(ch)
            if self.inside and ch != "\\" and self.loops():
                return i + 1
        return None

    def loops(self) -> bool:
        """Whether the string being written ends in one span repeated :data:`REPEATS` times. A span that
        repeats ends in the string's last :data:`MIN_SPAN` characters, so only the places those recur are
        tried (a search in C; in text that does not repeat there are none)."""
        if not self.inside or len(self.text) < MIN_SPAN * REPEATS:
            return False
        tail = self.text[-_WINDOW:]
        n = len(tail)
        needle = tail[-MIN_SPAN:]
        at = tail.rfind(needle, 0, n - 1)
        while at >= 0:
            span = n - MIN_SPAN - at
            if span * REPEATS > n:
                return False
            last = tail[-span:]
            if span >= MIN_SPAN and all(tail[n - span * (k + 1):n - span * k] == last for k in range(1, REPEATS)) \
                    and _wordy(last):
                return True
            at = tail.rfind(needle, 0, at + MIN_SPAN - 1)
        return False


def _wordy(span: str) -> bool:
    """A span of text (letters or digits, and more than two different characters), not a rule of
    dashes or a run of one character that a string may hold on purpose."""
    return sum(ch.isalnum() for ch in span) >= 3 and len(set(span)) > 2


def penalised(ask: ChatAsk) -> ChatAsk:
    """``ask`` with a frequency penalty of at least :data:`PENALTY`."""
    current = ask.sampling.frequency_penalty or 0.0
    return dataclasses.replace(ask, sampling=dataclasses.replace(ask.sampling,
                                                                 frequency_penalty=max(current, PENALTY)))


async def guarded(deltas: AsyncIterator[Delta], again: Callable[[], AsyncIterator[Delta]], *,
                  name: str) -> AsyncIterator[Delta]:
    """``deltas`` (a schema-constrained answer collected whole), or, when it loops inside a string,
    ``again()`` (the same ask, penalised) with both generations counted."""
    tail, held = StringTail(), []
    async for delta in deltas:
        held.append(delta)
        tail.feed(delta.text)
        if tail.loops():
            break
    else:
        for delta in held:
            yield delta
        return
    await aclose(deltas)  # the engine stops generating the loop
    spent = max(d.completion_tokens for d in held)
    log.info("%s: a schema answer looped inside a string after %d tokens; asking again with frequency "
             "penalty %.1f", name, spent, PENALTY)
    async for delta in again():
        yield delta.after(delta.prompt_tokens, spent)  # its prompt was read twice


async def streamed(engine: Engine, ask: ChatAsk, *, name: str) -> AsyncIterator[Delta]:
    """``engine``'s streamed answer to ``ask`` (a JSON schema constraining it), passed on as it comes; when
    it loops inside a string, its generation is stopped and the rest is the engine's continuation of the
    text sent (:meth:`~.api.Engine.resume`, penalised, ``max_tokens`` less what was spent), both
    generations counted. Where the engine cannot continue it, the answer goes on as it is."""
    deltas = engine.generate(ask)
    tail, sent, watching = StringTail(), [], True
    rest: AsyncIterator[Delta] | None = None
    spent = (0, 0)
    try:
        async for delta in deltas:
            end = tail.loop_end(delta.text) if watching and delta.finish_reason is None else None
            if end is None:
                sent.append(delta.text)
                yield delta
                continue
            sent.append(delta.text[:end])
            spent = (delta.prompt_tokens, delta.completion_tokens)
            rest = engine.resume(continued(ask, spent[1]), "".join(sent))
            if rest is not None:  # the piece up to where the loop stands; the rest follows from there
                yield dataclasses.replace(delta, text=delta.text[:end])
                break
            log.info("%s: a streamed schema answer loops inside a string and cannot be continued", name)
            watching = False
            yield delta
    finally:
        await aclose(deltas)  # the engine stops generating (the loop, or the answer of a client gone)
    if rest is None:
        return
    log.info("%s: a streamed schema answer looped inside a string after %d tokens; writing its rest with "
             "frequency penalty %.1f", name, spent[1], PENALTY)
    async for delta in rest:
        yield delta.after(*spent)


def continued(ask: ChatAsk, spent: int) -> ChatAsk:
    """``ask`` :func:`penalised`, for the rest of an answer that has spent ``spent`` of its ``max_tokens``."""
    out = penalised(ask)
    cap = ask.sampling.max_tokens
    if cap is None:
        return out
    return dataclasses.replace(out, sampling=dataclasses.replace(out.sampling, max_tokens=max(1, cap - spent)))


def whole_answer(engine: Engine, ask: Ask, name: str) -> AsyncIterator[Delta]:
    """``engine``'s answer to ``ask`` for a client that receives it whole: guarded when a JSON schema
    constrains it (:func:`guarded`), as it comes otherwise."""
    if not (isinstance(ask, ChatAsk) and ask.schema is not None):
        return engine.generate(ask)
    return guarded(engine.generate(ask), lambda: engine.generate(penalised(ask)), name=name)
