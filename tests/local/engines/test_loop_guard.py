"""A schema answer that loops inside a string is asked again with a frequency penalty (collected
answers only), both generations counted; legitimate repetition is left alone."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qfnb.local.engines.ask import ChatAsk, Sampling
from qfnb.local.engines.base import Delta
from qfnb.local.engines.loop_guard import MAX_SPAN, MIN_SPAN, PENALTY, REPEATS, StringTail, guarded, penalised, streamed

LOOP = '{"setup": "A cat is like a superhero. ' + "It is like a superhero, but not as strong. " * 20
GOOD = '{"setup": "A cat walks in.", "punchline": "It naps."}'


def tail_of(text: str) -> StringTail:
    tail = StringTail()
    tail.feed(text)
    return tail


@pytest.mark.parametrize(("text", "loops"), [
    (LOOP, True),
    ('{"a": "' + "这是一个重复的句子，一遍又一遍。" * 4, True),
    (GOOD, False),
    ('{"rule": "' + "-" * 300, False),  # a rule of dashes is no loop
    ('{"row": "' + "ab" * 200, False),  # too short a span to call a loop
    ('[' + '{"name": "same item here"}, ' * 10, False),  # repeated objects: not inside one string
    ('{"q": "say \\"again and again\\" ' + 'again and again ' * 2, False),
])
def test_a_loop_is_a_span_repeated_at_the_end_of_the_string_being_written(text: str, loops: bool) -> None:
    assert tail_of(text).loops() is loops


class Engine:
    """Answers the first ask with ``first`` (in pieces of ``size`` characters), a penalised one with ``GOOD``."""

    def __init__(self, first: str, size: int = 4) -> None:
        self.first, self.size, self.closed = first, size, False
        self.asked: list[ChatAsk] = []

    def generate(self, ask: ChatAsk) -> AsyncIterator[Delta]:
        self.asked.append(ask)
        text = GOOD if ask.sampling.frequency_penalty else self.first
        return self._stream(text)

    async def _stream(self, text: str) -> AsyncIterator[Delta]:
        pieces = [text[i:i + self.size] for i in range(0, len(text), self.size)]
        try:
            for k, piece in enumerate(pieces, 1):
                yield Delta(piece, None, 20, k)
            yield Delta("", "stop", 20, len(pieces))
        finally:
            self.closed = True


async def test_a_looping_answer_is_asked_again_with_the_penalty_and_both_generations_count() -> None:
    engine = Engine(LOOP)
    ask = ChatAsk(model="m", messages=({"role": "user", "content": "a joke"},), schema={"type": "object"},
                  sampling=Sampling(temperature=0))
    got = [d async for d in guarded(engine.generate(ask), lambda: engine.generate(penalised(ask)), name="m")]
    assert "".join(d.text for d in got) == GOOD and got[-1].finish_reason == "stop"
    assert [a.sampling.frequency_penalty for a in engine.asked] == [None, PENALTY]
    first_tokens = 1 + LOOP.index("It is like") // 4 + 3 * len("It is like a superhero, but not as strong. ") // 4
    assert got[-1].prompt_tokens == 40 and got[-1].completion_tokens > len(GOOD) // 4 + first_tokens // 2
    assert got[-1].completion_tokens < len(LOOP) // 4  # the loop was stopped early, not run to its end


async def test_an_answer_that_does_not_loop_is_passed_on_unchanged() -> None:
    engine = Engine(GOOD)
    ask = ChatAsk(model="m", messages=({"role": "user", "content": "a joke"},), schema={"type": "object"})
    got = [d async for d in guarded(engine.generate(ask), lambda: engine.generate(penalised(ask)), name="m")]
    assert "".join(d.text for d in got) == GOOD and len(engine.asked) == 1
    assert got[-1].completion_tokens == len(range(0, len(GOOD), 4))


def test_a_users_own_larger_penalty_is_kept() -> None:
    ask = ChatAsk(model="m", messages=(), sampling=Sampling(frequency_penalty=1.5))
    assert penalised(ask).sampling.frequency_penalty == 1.5


async def test_only_a_schema_answer_is_guarded() -> None:
    """whole_answer (the routes' collected answers and batch rows): a plain chat that repeats itself
    is left as it is; under a schema the loop is asked again."""
    from qfnb.local.engines.loop_guard import whole_answer

    plain = ChatAsk(model="m", messages=({"role": "user", "content": "sing"},))
    engine = Engine(LOOP)
    got = "".join([d.text async for d in whole_answer(engine, plain, "m")])  # type: ignore[arg-type]
    assert got == LOOP and len(engine.asked) == 1
    shaped = ChatAsk(model="m", messages=plain.messages, schema={"type": "object"})
    got = "".join([d.text async for d in whole_answer(engine, shaped, "m")])  # type: ignore[arg-type]
    assert got == GOOD and [a.sampling.frequency_penalty for a in engine.asked[1:]] == [None, PENALTY]


# ---- a streamed answer: its rest written after what was sent ------------------------------------------

REST = '", "punchline": "It naps."}'


class Resuming(Engine):
    """:class:`Engine` that also writes an answer's rest (``REST``) after the text it is given, in
    pieces of ``size``; ``can`` False: it cannot (as an external engine)."""

    def __init__(self, first: str, size: int = 4, can: bool = True) -> None:
        super().__init__(first, size)
        self.can = can
        self.resumed: list[tuple[ChatAsk, str]] = []

    def resume(self, ask: ChatAsk, text: str) -> AsyncIterator[Delta] | None:
        if not self.can:
            return None
        self.resumed.append((ask, text))
        return self._rest()

    async def _rest(self) -> AsyncIterator[Delta]:
        yield Delta(REST[:10], None, 60, 2)
        yield Delta(REST[10:], "stop", 60, 5)


SHAPED = ChatAsk(model="m", messages=({"role": "user", "content": "a joke"},), schema={"type": "object"},
                 sampling=Sampling(temperature=0, max_tokens=500))


@pytest.mark.parametrize("size", [1, 3, 4, 7, 50])
async def test_a_streamed_loop_is_cut_where_it_is_caught_and_its_rest_written_after_what_was_sent(size: int) -> None:
    engine = Resuming(LOOP, size)
    got = [d async for d in streamed(engine, SHAPED, name="m")]  # type: ignore[arg-type]
    (ask, sent), = engine.resumed
    # the cut depends on the text alone, not on how the engine cut it into pieces
    assert sent == LOOP[:next(i for i in range(len(LOOP)) if tail_of(LOOP[:i]).loops())]
    assert sent.endswith("not as strong") and sent.count("It is like a superhero") == 3
    assert "".join(d.text for d in got) == sent + REST and engine.closed
    assert ask.sampling.frequency_penalty == PENALTY
    spent = got[-3].completion_tokens  # the last piece of the first generation
    assert ask.sampling.max_tokens == 500 - spent
    assert (got[-1].prompt_tokens, got[-1].completion_tokens) == (20 + 60, spent + 5)  # both counted
    assert [d.finish_reason for d in got].count("stop") == 1


async def test_a_stream_the_engine_cannot_continue_goes_on_as_it_is() -> None:
    engine = Resuming(LOOP, can=False)
    got = [d async for d in streamed(engine, SHAPED, name="m")]  # type: ignore[arg-type]
    assert "".join(d.text for d in got) == LOOP and got[-1].finish_reason == "stop"


async def test_a_stream_that_does_not_loop_is_passed_on_piece_by_piece() -> None:
    engine = Resuming(GOOD)
    got = [d async for d in streamed(engine, SHAPED, name="m")]  # type: ignore[arg-type]
    assert [d.text for d in got][:-1] == [GOOD[i:i + 4] for i in range(0, len(GOOD), 4)] and not engine.resumed


async def test_a_client_gone_from_the_stream_stops_the_generation() -> None:
    engine = Resuming(LOOP)
    stream = streamed(engine, SHAPED, name="m")  # type: ignore[arg-type]
    assert (await anext(stream)).text
    await stream.aclose()  # type: ignore[attr-defined]
    assert engine.closed and not engine.resumed


def brute_loops(string: str) -> bool:
    """A loop as the guard defines it, found by trying every span."""
    tail = string[-MAX_SPAN * REPEATS:]
    return any(all(tail[len(tail) - span * (k + 1):len(tail) - span * k] == tail[-span:] for k in range(REPEATS))
               and sum(ch.isalnum() for ch in tail[-span:]) >= 3 and len(set(tail[-span:])) > 2
               for span in range(MIN_SPAN, len(tail) // REPEATS + 1))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["ab", "cd ", "abc", "x", "It is. ", "z" * 13, "e "]), max_size=60), st.integers(0, 2))
def test_the_loop_search_finds_what_trying_every_span_finds(parts: list[str], repeats: int) -> None:
    """The guard looks only where the string's last characters recur; trying every span agrees at every
    character (a span repeated to the end, or a string that only looks like one)."""
    text = "".join(parts) + "".join(parts[-3:]) * repeats
    tail = StringTail()
    tail.feed('{"s": "')
    for i, ch in enumerate(text):
        tail.feed(ch)
        assert tail.loops() is brute_loops(text[:i + 1]), text[:i + 1]
