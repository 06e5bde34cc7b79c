"""Qianfan v1's streamed chunks (qfnb.local.convert.qianfan_v1.V1Render.events): each token's chunk
goes out as its delta arrives, not one delta late; ``is_end`` still marks the last chunk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from qfnb.local.convert.answer import Tally
from qfnb.local.convert.qianfan_v1 import V1Render
from qfnb.local.engines.base import Delta
from qfnb.protocol.wires.codec.sse import SSEDecoder

RENDER = V1Render(obj="completion", stream=True, rid="as-1", created=0)


class Engine:
    """Deltas handed out one at a time, each only once the test releases it."""

    def __init__(self, deltas: list[Delta]) -> None:
        self.deltas, self.asked = deltas, 0

    async def stream(self) -> AsyncIterator[tuple[int, Delta]]:
        for delta in self.deltas:
            self.asked += 1
            yield 0, delta


def chunks(raw: list[bytes]) -> list[dict[str, object]]:
    return [item.data for item in SSEDecoder().feed(b"".join(raw).decode())]


async def drain(deltas: list[Delta]) -> tuple[list[bytes], list[int]]:
    """Every chunk, and how many deltas had been asked for when each came out."""
    engine = Engine(deltas)
    out, asked = [], []
    async for raw in RENDER.events(engine.stream(), [Tally()], served=None):  # type: ignore[arg-type]
        out.append(raw)
        asked.append(engine.asked)
    return out, asked


def test_a_token_goes_out_before_the_next_delta_is_read() -> None:
    deltas = [Delta("def", None, 5, 1), Delta(" f", None, 5, 2), Delta("", "length", 5, 2)]
    raw, asked = asyncio.run(drain(deltas))
    assert asked == [1, 2, 3]  # the first token's chunk did not wait for the second delta
    got = chunks(raw)
    assert [c["result"] for c in got] == ["def", " f", ""]
    assert [c["sentence_id"] for c in got] == [0, 1, 2]
    assert [c["is_end"] for c in got] == [False, False, True]
    assert got[-1]["finish_reason"] == "length" and got[-1]["is_truncated"] is True
    assert got[0]["usage"]["completion_tokens"] == 1  # type: ignore[index]


def test_the_last_token_carries_is_end_when_it_says_the_answer_is_over() -> None:
    got = chunks(asyncio.run(drain([Delta("hi", None, 3, 1), Delta(" there", "stop", 3, 2)]))[0])
    assert [(c["result"], c["is_end"]) for c in got] == [("hi", False), (" there", True)]
    assert got[-1]["finish_reason"] == "normal"


def test_a_stream_that_ends_without_a_finish_ends_with_an_empty_is_end_chunk() -> None:
    got = chunks(asyncio.run(drain([Delta("a", None, 1, 1), Delta("b", None, 1, 2)]))[0])
    assert [(c["result"], c["is_end"]) for c in got] == [("a", False), ("b", False), ("", True)]
    assert "".join(str(c["result"]) for c in got) == "ab"


def test_a_finish_that_is_not_the_last_delta_goes_out_as_an_ordinary_chunk() -> None:
    deltas = [Delta("x", "stop", 1, 1), Delta("y", None, 1, 2), Delta("", "stop", 1, 2)]
    got = chunks(asyncio.run(drain(deltas))[0])
    assert [(c["result"], c["is_end"]) for c in got] == [("x", False), ("y", False), ("", True)]
    assert [c["sentence_id"] for c in got] == [0, 1, 2]
