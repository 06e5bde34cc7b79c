"""The Responses API as data (qfnb.protocol.responses): a request's checks, its items in chat terms,
and the response object and semantic events it answers with (issue 42, part 2)."""

from __future__ import annotations

import pytest

from qfnb.protocol.errors import ProtocolError
from qfnb.protocol.responses import chat_body, check_request, input_items
from qfnb.protocol.responses_answer import ResponseEvents, Turn, output_items

TOOL = {"type": "function", "name": "get_weather", "description": "the weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def test_a_request_becomes_the_chat_it_asks() -> None:
    data = check_request({"model": "m", "input": "hi", "instructions": "be brief", "temperature": None,
                          "max_output_tokens": 20, "tools": [TOOL], "tool_choice": {"type": "function",
                                                                                  "name": "get_weather"},
                          "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}}})
    history = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "earlier"}]},
               {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "sure"}]},
               {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"x"}'},
               {"type": "function_call_output", "call_id": "c1", "output": "sunny"}]
    body = chat_body(data, history)
    assert body["messages"] == [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "earlier"},
        {"role": "assistant", "content": "sure", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"x"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"}, {"role": "user", "content": "hi"}]
    assert body["max_completion_tokens"] == 20 and "temperature" not in body
    assert body["tools"] == [{"type": "function", "function": {  # strict: the Responses API's default
        **{k: TOOL[k] for k in ("name", "description", "parameters")}, "strict": True}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "w",
                                                                              "schema": {"type": "object"}}}


@pytest.mark.parametrize(("body", "field"), [
    ({"model": "m"}, "input"),
    ({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"model": "m", "input": "x", "truncation": "auto"}, "truncation"),
    ({"model": "m", "input": "x", "background": True}, "background"),
    ({"model": "m", "input": "x", "frequency": 1}, "frequency"),
    ({"model": "m", "input": [{"type": "reasoning"}]}, "input[0].type"),
    ({"model": "m", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"model": "m", "input": "x", "reasoning": {"effort": "high"}}, "reasoning"),
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
