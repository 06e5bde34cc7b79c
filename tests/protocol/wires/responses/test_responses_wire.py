"""The Responses API as data (qfnb.protocol.wires.responses.request): a request's checks (its fields, types and
ranges: the spec's), its items, and the response object and semantic events it answers with
(issue 42, part 2)."""

from __future__ import annotations

import pytest

from qfnb.protocol.errors import ProtocolError
from qfnb.protocol.wires.qianfan.inference import parse_request
from qfnb.protocol.wires.responses.answer import ResponseEvents, Turn, output_items
from qfnb.protocol.wires.responses.request import ResponsesRequest, check_request, input_items


@pytest.mark.parametrize(("body", "field"), [
    ({"model": "m"}, "input"),
    ({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"model": "m", "input": "x", "truncation": "auto"}, "truncation"),
    ({"model": "m", "input": "x", "background": True}, "background"),
    ({"model": "m", "input": "x", "frequency": 1}, "frequency"),
    ({"model": "m", "input": [{"type": "reasoning"}]}, "input[0].type"),
    ({"model": "m", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"model": "m", "input": "x", "reasoning": {"effort": "high"}}, "reasoning"),
    ({"model": "m", "input": "x", "temperature": 2.5}, "temperature"),  # OpenAI's range: 0-2
    ({"model": "m", "input": "x", "max_output_tokens": 1_000_000_000}, "max_output_tokens"),
    ({"model": "m", "input": "x", "store": "yes"}, "store"),
    ({"model": "m", "input": [{"type": "function_call", "call_id": 1, "name": "f", "arguments": "{}"}]},
     "input[0].call_id"),
    ({"model": "m", "input": "x", "tools": [{"type": "function", "name": "f"}],
      "tool_choice": {"type": "function", "name": "g"}}, "tool_choice.name"),
    ({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "name": "a"}}}, "text.format.schema"),
])
def test_what_cannot_be_honoured_is_refused_by_name(body: dict, field: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        check_request(body)
    assert caught.value.field == field


def test_the_events_of_a_streamed_answer_make_up_its_object() -> None:
    writer = ResponseEvents("resp_1", {"model": "m", "input": "x"}, "m", 1)
    first = {"index": 0, "id": "call_1", "function": {"name": "get_weather", "arguments": '{"ci'}}
    events = writer.start() + writer.text("Hel") + writer.text("lo") + writer.tool_fragments([first])
    events += writer.tool_fragments([{"index": 0, "function": {"arguments": 'ty":"x"}'}}])
    done, final = writer.finish(Turn(text="Hello", finish="tool_calls", input_tokens=5, output_tokens=4,
                                     cached_tokens=3))
    kinds = [k for k, _ in events + done]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert [e["sequence_number"] for _, e in events + done] == list(range(len(kinds)))
    assert "".join(e["delta"] for k, e in events if k == "response.output_text.delta") == "Hello"
    assert final["output"][0]["content"][0]["text"] == "Hello"
    assert final["output"][1] | {"id": ""} == {"type": "function_call", "id": "", "call_id": "call_1",
                                             "name": "get_weather", "arguments": '{"city":"x"}', "status": "completed"}
    assert final["usage"]["input_tokens_details"]["cached_tokens"] == 3 and final["usage"]["total_tokens"] == 9
    assert output_items(Turn(text="Hello"), ["msg_1"])[0]["content"][0]["text"] == "Hello"


def test_a_string_input_is_one_user_message() -> None:
    assert input_items("hi") == [{"type": "message", "role": "user", "content": [{"type": "input_text",
                                                                                   "text": "hi"}]}]


def test_the_spec_reads_the_body() -> None:
    req = parse_request(ResponsesRequest, {"model": "m", "input": "hi", "temperature": 1.5, "max_output_tokens": None,
                                           "tools": [{"type": "function", "name": "f", "parameters": {}}]})
    assert req.temperature == 1.5 and req.max_output_tokens is None  # 1.5: OpenAI's range takes it
    assert req.tools is not None and req.tools[0].strict is True  # the Responses API's default
    with pytest.raises(ProtocolError) as refused:
        check_request({"model": "m", "input": "x", "max_output_tokens": 1_000_000_000})
    assert str(refused.value) == "max_output_tokens: must be in [1, 65536], got 1000000000"
