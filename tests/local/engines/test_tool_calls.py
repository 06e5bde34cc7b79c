"""The platform's tool-call decision on its own engine (:mod:`qfnb.local.engines.llama.tool_calls`): an
answer that is a call of an offered tool becomes one ``tool_calls`` delta carrying its tokens'
logprobs; any other answer streams as text, logprobs and all."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from qfnb.local.engines.base import FINISH_NORMAL, FINISH_TOOL_CALLS, Delta
from qfnb.local.engines.llama.tool_calls import (
    AFTER_RESULT_ASK,
    answer_after_result,
    as_tool_calls,
    call_offered,
    call_schema,
    enforce_strict,
    fix_rendered,
)
from qfnb.protocol.schema.accepted import check_schema


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


# ---- the turn after a tool result
HISTORY = [{"role": "user", "content": "Weather in Oslo?"},
           {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
               "name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
           {"role": "tool", "tool_call_id": "c1", "content": "40 C"}]


def _after_result(first: list[str]) -> tuple[list[Delta], list[list[dict[str, Any]]]]:
    asked: list[list[dict[str, Any]]] = []

    async def again(messages: list[dict[str, Any]]) -> AsyncIterator[Delta]:
        asked.append(messages)
        yield Delta("It is 40 C in Oslo.", None, 30, 6)
        yield Delta("", FINISH_NORMAL, 30, 6)

    async def run() -> list[Delta]:
        answer = as_tool_calls(_stream(first), ["get_weather"])
        return [d async for d in answer_after_result(answer, HISTORY, again)]

    return asyncio.run(run()), asked


def test_a_call_repeated_after_its_result_is_answered_from_the_result() -> None:
    out, asked = _after_result(['{"name": "get_weather", ', '"arguments": {"city":  "Oslo"}}'])
    assert "".join(d.text for d in out) == "It is 40 C in Oslo." and not any(d.tool_calls for d in out)
    (closing,) = asked
    assert closing[-1]["content"] == f"40 C\n\n{AFTER_RESULT_ASK}" and HISTORY[-1]["content"] == "40 C"
    assert (out[-1].prompt_tokens, out[-1].completion_tokens) == (37, 8), "both generations are counted"


def test_a_new_call_after_a_result_goes_through() -> None:
    out, asked = _after_result(['{"name": "get_weather", "arguments": {"city": "Rome"}}'])
    assert asked == [] and out[0].tool_calls is not None
    assert json.loads(out[0].tool_calls[0]["function"]["arguments"]) == {"city": "Rome"}


def test_text_after_a_result_streams_as_it_is() -> None:
    out, asked = _after_result(["Forty", " degrees."])
    assert asked == [] and "".join(d.text for d in out) == "Forty degrees."


def test_a_call_written_over_and_over_stops_the_generation_at_the_second_copy() -> None:
    sent: list[str] = []
    copy = '{"name": "get_weather", "arguments": {"city": "Oslo"}}\n'

    async def endless() -> AsyncIterator[Delta]:
        for i in range(200):
            sent.append(copy)
            yield Delta(copy, None, 7, i + 1)
        yield Delta("", FINISH_NORMAL, 7, 200)

    async def run() -> list[Delta]:
        return [d async for d in as_tool_calls(endless(), ["get_weather"])]

    out = asyncio.run(run())
    assert len(sent) == 2, "the engine's stream is closed at the second copy"
    (call,) = out[0].tool_calls or []
    assert json.loads(call["function"]["arguments"]) == {"city": "Oslo"}
    assert out[-1].finish_reason == FINISH_TOOL_CALLS and out[-1].completion_tokens == 2


def test_a_repeated_call_written_out_with_more_after_it_is_answered_from_the_result() -> None:
    # openai-agents' 0.5B runs: the call again, then the tool's schema title as a second object
    out, asked = _after_result(['{"name": "get_weather", "arguments": {"city": "Oslo"}} ',
                                '{"name": "get_weather_args", "type": "object"}}'])
    assert len(asked) == 1 and "".join(d.text for d in out) == "It is 40 C in Oslo."


def test_json_text_after_a_result_that_is_no_repeat_is_kept() -> None:
    out, asked = _after_result(['{"temp": 40}'])
    assert asked == [] and "".join(d.text for d in out) == '{"temp": 40}'


def test_a_call_with_a_stray_fence_after_it_is_a_call() -> None:
    out = _collect(['{"name": "get_weather", "arguments": {"city": "Paris"}}', " ```"])
    (call,) = out[0].tool_calls or []
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_a_call_after_a_one_line_preamble_is_a_call() -> None:
    # openai-agents' 0.5B misses: a sentence ending in a colon, then the call as bare JSON
    out = _collect(["Here's a JSON response for the `get_weather` ", "function call:  ",
                    '{"name": "get_weather", "arguments": {"city": "Lima"}}'])
    (call,) = out[0].tool_calls or []
    assert json.loads(call["function"]["arguments"]) == {"city": "Lima"} and out[-1].finish_reason == FINISH_TOOL_CALLS


def test_a_sentence_with_a_colon_and_no_call_is_text() -> None:
    out = _collect(["Note: it", " is sunny", " in Lima."])
    assert "".join(d.text for d in out) == "Note: it is sunny in Lima." and not any(d.tool_calls for d in out)


def test_a_long_first_line_streams_before_the_answer_ends() -> None:
    seen: list[str] = []
    words = ["word "] * 40

    async def run() -> None:
        async for d in as_tool_calls(_stream(words), ["get_weather"]):
            seen.append(d.text)
            if len(seen) == 1:
                assert len("".join(seen)) <= 200, "held only while it may be a preamble"

    asyncio.run(run())
    assert "".join(seen) == "".join(words)


def test_a_templates_doubled_call_format_is_rendered_as_its_makers_wrote_it() -> None:
    doubled = 'XML tags:\n<tool_call>\n{{"name": <function-name>, "arguments": <args-json-object>}}\n</tool_call>'
    single = 'XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
    assert fix_rendered(doubled) == single
    assert fix_rendered("a {{literal}} prompt") == "a {{literal}} prompt"


CITY = {"type": "object", "properties": {"city": {"enum": ["Paris", "Oslo"]}}, "required": ["city"],
        "additionalProperties": False}


def _strict(pieces: list[str], redo: list[str]) -> tuple[list[Delta], list[str]]:
    """``pieces`` as an auto answer of a strict tool; a call that does not fit is asked ``redo``."""
    asked: list[str] = []

    async def forced(name: str) -> AsyncIterator[Delta]:
        asked.append(name)
        async for d in as_tool_calls(_stream(redo), [name], forced=True):
            yield d

    async def run() -> list[Delta]:
        answer = as_tool_calls(_stream(pieces), ["get_weather"])
        return [d async for d in enforce_strict(answer, {"get_weather": CITY}, forced)]

    return asyncio.run(run()), asked


def test_a_strict_call_that_does_not_fit_is_written_again_under_its_grammar() -> None:
    # the probe's case: a city outside the enum and an extra property, under tool_choice auto
    out, asked = _strict(['{"name": "get_weather", "arguments": {"city": "Rome", "units": "C"}}'],
                         ['{"name": "get_weather", "arguments": {"city": "Oslo"}}'])
    assert asked == ["get_weather"]
    call, last = out
    assert json.loads(call.tool_calls[0]["function"]["arguments"]) == {"city": "Oslo"}  # type: ignore[index]
    assert last.finish_reason == FINISH_TOOL_CALLS and last.completion_tokens == 2  # both generations counted


def test_a_strict_call_that_fits_and_plain_text_pass_untouched() -> None:
    out, asked = _strict(['{"name": "get_weather", "arguments": {"city": "Paris"}}'], [])
    assert asked == [] and json.loads(out[0].tool_calls[0]["function"]["arguments"]) == {"city": "Paris"}  # type: ignore[index]
    out, asked = _strict(["It is ", "sunny."], [])
    assert asked == [] and "".join(d.text for d in out) == "It is sunny."


def test_call_schema_moves_the_refs_of_each_tools_parameters() -> None:
    params = {"type": "object", "properties": {"p": {"$ref": "#/$defs/P"}}, "$defs": {"P": {"type": "integer"}}}
    tools = [{"type": "function", "function": {"name": n, "parameters": params}} for n in ("a", "b")]
    assert call_schema(tools[:1])["properties"]["arguments"]["properties"]["p"]["$ref"] == \
        "#/properties/arguments/$defs/P"
    both = call_schema(tools)
    assert both["anyOf"][1]["properties"]["arguments"]["properties"]["p"]["$ref"] == \
        "#/anyOf/1/properties/arguments/$defs/P"
    check_schema(both, "tools")  # it resolves


def test_a_fenced_call_after_a_preamble_with_prose_after_it_is_a_call() -> None:
    # the 1.5B model at temperature 0.8 under openai-agents: the call in a fence between two sentences
    out = _collect(["To see the weather in Lima, you can use this function call:\n\n```json\n",
                    '{\n  "name": "get_weather",\n  "arguments": {"city": "Lima"}\n}\n```',
                    "\n\nThis will return the forecast."])
    (call,) = out[0].tool_calls or []
    assert json.loads(call["function"]["arguments"]) == {"city": "Lima"} and out[-1].finish_reason == FINISH_TOOL_CALLS
    # a fenced block that is no call of an offered tool stays text, prose and all
    data = _collect(['```json\n{"city": "Lima", "sky": "clear"}\n```', "\n\nThe sky is clear."])
    assert all(d.tool_calls is None for d in data) and "The sky is clear." in "".join(d.text for d in data)


def _offered(first: list[str]) -> tuple[list[Delta], int]:
    """``first`` decided by as_tool_calls, then call_offered; how many times the call was forced."""
    forced: list[int] = []

    async def again() -> AsyncIterator[Delta]:
        forced.append(1)
        yield Delta("", None, 9, 4, tool_calls=[{"index": 0, "id": "call_x", "type": "function", "function": {
            "name": "get_weather", "arguments": '{"city": "Lima"}'}}])
        yield Delta("", FINISH_TOOL_CALLS, 9, 4)

    async def run() -> list[Delta]:
        return [d async for d in call_offered(as_tool_calls(_stream(first), ["get_weather"]), ["get_weather"], again)]

    return asyncio.run(run()), len(forced)


def test_a_call_of_a_tool_not_offered_is_written_again_as_a_call_of_an_offered_one() -> None:
    # the 1.5B model under pydantic-ai: a call of a tool it made up, as the whole answer
    out, forced = _offered(['```json\n{"name": "get_forecast", ', '"arguments": {"town": "Lima"}}\n```'])
    assert forced == 1 and out[0].tool_calls is not None
    assert out[0].tool_calls[0]["function"]["name"] == "get_weather" and out[-1].finish_reason == FINISH_TOOL_CALLS
    assert (out[-1].prompt_tokens, out[-1].completion_tokens) == (16, 6), "both generations are counted"
    # text, a call of an offered tool, and JSON that is no call are kept as they are
    text, forced = _offered(["It is", " sunny", " in Lima."])
    assert forced == 0 and "".join(d.text for d in text) == "It is sunny in Lima."
    call, forced = _offered(['{"name": "get_weather", "arguments": {"city": "Oslo"}}'])
    assert forced == 0 and call[0].tool_calls is not None
    data, forced = _offered(['{"name": "Lima", "population": 10}'])
    assert forced == 0 and "".join(d.text for d in data) == '{"name": "Lima", "population": 10}'


def test_a_call_of_a_tool_not_offered_after_a_result_asks_for_the_answer() -> None:
    """pydantic-ai's 1.5B run answered a result with a call of a tool not offered, which was written
    again as a required call of an offered one: a call nobody asked for, and no answer (0 of 5)."""
    out, asked = _after_result(['{"name": "final_answer", "arguments": {"text": "40 C"}}'])
    assert len(asked) == 1 and "".join(d.text for d in out) == "It is 40 C in Oslo."
    assert not any(d.tool_calls for d in out)


def test_a_call_written_as_the_answer_after_a_result_asks_for_the_answer() -> None:
    """openai-agents' 1.5B answers after the result were another call written as JSON text."""
    out, asked = _after_result(['{"name": "get_weather", "arguments": {"city": "Rome"}}\n',
                                "This returns the weather in Rome, which you can compare."])
    assert len(asked) == 1 and "".join(d.text for d in out) == "It is 40 C in Oslo."
