"""The platform's tool-call decision on its own engine (:mod:`qfnb.local.engines.tool_calls`): an
answer that is a call of an offered tool becomes one ``tool_calls`` delta carrying its tokens'
logprobs; any other answer streams as text, logprobs and all."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from qfnb.local.engines.base import FINISH_NORMAL, FINISH_TOOL_CALLS, Delta
from qfnb.local.engines.tool_calls import as_tool_calls


def _lp(token: str) -> dict[str, Any]:
    return {"token": token, "logprob": -0.5, "top_logprobs": []}


async def _stream(pieces: list[str]) -> AsyncIterator[Delta]:
    for i, piece in enumerate(pieces):
        yield Delta(piece, None, 7, i + 1, logprobs=[_lp(piece)])
    yield Delta("", FINISH_NORMAL, 7, len(pieces))


def _collect(pieces: list[str]) -> list[Delta]:
    async def run() -> list[Delta]:
        return [d async for d in as_tool_calls(_stream(pieces), ["get_weather"])]

    return asyncio.run(run())


def test_a_call_becomes_one_tool_calls_delta_with_its_tokens_logprobs() -> None:
    pieces = ["<tool_call>", '\n{"name": "get_weather", ', '"arguments": {"city": "Paris"}}', "\n</tool_call>"]
    out = _collect(pieces)
    call, last = out
    assert call.tool_calls is not None and call.tool_calls[0]["function"]["name"] == "get_weather"
    assert json.loads(call.tool_calls[0]["function"]["arguments"]) == {"city": "Paris"}
    assert [e["token"] for e in call.logprobs or ()] == pieces  # every token the call was written with
    assert last.finish_reason == FINISH_TOOL_CALLS and last.completion_tokens == 4


def test_text_streams_as_it_comes_with_its_logprobs() -> None:
    pieces = ["It is", " sunny", " in Paris."]
    out = _collect(pieces)
    assert [d.text for d in out[:-1]] == pieces and out[-1].finish_reason == FINISH_NORMAL
    assert [d.logprobs for d in out[:-1]] == [[_lp(p)] for p in pieces]
    assert all(d.tool_calls is None for d in out)


def test_json_of_a_tool_not_offered_stays_text() -> None:
    pieces = ['{"name": "get_time", "arguments": {}}']
    out = _collect(pieces)
    assert out[0].text == pieces[0] and out[0].tool_calls is None and out[0].logprobs == [_lp(pieces[0])]


def test_the_same_call_written_several_times_as_bare_json_is_a_call() -> None:
    """What the 0.5B model answered a second time with the function still offered (a %%qfchat
    --tools cell): four copies of its call, a line each."""
    line = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
    out = _collect([line + "\n", line + "\n", line + "\n", line])
    assert out[0].tool_calls is not None and len(out[0].tool_calls) == 1  # the same call, once
    assert out[0].tool_calls[0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert out[-1].finish_reason == FINISH_TOOL_CALLS
    assert _collect([line + " and then some words"])[0].tool_calls is None  # a call and prose: text
