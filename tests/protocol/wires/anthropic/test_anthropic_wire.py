"""Anthropic's Messages API as data (qfnb.protocol.wires.anthropic.messages): a request's checks (its fields, types
and Anthropic's ranges: the spec's), what cannot be honoured refused by name, and the stream events
that make up a message (issue 42, part 3)."""

from __future__ import annotations

import pytest

from qfnb.protocol.errors import ProtocolError
from qfnb.protocol.wires.anthropic import messages as anthropic
from qfnb.protocol.wires.chat.turn import Turn


@pytest.mark.parametrize(("body", "field"), [
    ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image"}]}]},
     "messages[0].content[0]"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "thinking": {
        "type": "enabled", "budget_tokens": 1024}}, "thinking"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "container": "c"}, "container"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
      "tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0]"),
    ({"model": "m", "max_tokens": 1_000_000_000, "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"model": "m", "max_tokens": 5, "temperature": 1.5, "messages": [{"role": "user", "content": "x"}]},
     "temperature"),
    ({"model": "m", "max_tokens": 5, "top_k": -1, "messages": [{"role": "user", "content": "x"}]}, "top_k"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
      "tools": [{"name": "f", "input_schema": {}}], "tool_choice": {"type": "tool", "name": "g"}}, "tool_choice.name"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]}, "messages[0].content[0].type"),
])
def test_what_cannot_be_honoured_is_refused_by_name(body: dict, field: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        anthropic.check_request(body)
    assert caught.value.field == field


def test_the_events_make_up_the_message() -> None:
    writer = anthropic.MessageEvents("msg_1", "m")
    events = writer.start(7) + writer.text("Hi") + writer.tool_fragments(
        [{"index": 0, "id": "t1", "function": {"name": "f", "arguments": '{"a":'}}])
    events += writer.tool_fragments([{"index": 0, "function": {"arguments": "1}"}}])
    events += writer.finish(Turn(text="Hi", tool_calls=[{"id": "t1"}], input_tokens=7,
                                                   output_tokens=3, cached_tokens=2))
    kinds = [k for k, _ in events]
    assert kinds == ["message_start", "ping", "content_block_start", "content_block_delta", "content_block_stop",
                     "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
                     "message_delta", "message_stop"]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert events[-2][1]["usage"] == {"input_tokens": 5, "output_tokens": 3, "cache_creation_input_tokens": 0,
                                      "cache_read_input_tokens": 2}
    message = anthropic.message_object("msg_1", "m", Turn(text="", tool_calls=[
        {"id": "t1", "function": {"name": "f", "arguments": '{"a": 1}'}}]))
    assert message["content"] == [{"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]


def _history(use_id: str, result_id: str | None) -> dict:
    answer = [{"type": "tool_result", "tool_use_id": result_id, "content": "rain"}] if result_id else [
        {"type": "text", "text": "never mind"}]
    return {"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": use_id, "name": "w", "input": {}}]},
        {"role": "user", "content": answer}]}


def test_a_tool_result_must_answer_the_tool_use_before_it() -> None:
    anthropic.check_request(_history("t1", "t1"))
    with pytest.raises(ProtocolError, match=r"messages\[2\]\.content: the tool_result for 'nope' answers no "
                                            r"tool_use block of the message before .*: t1\)") as caught:
        anthropic.check_request(_history("t1", "nope"))
    assert caught.value.field == "messages[2].content"
    with pytest.raises(ProtocolError, match=r"messages\[2\]: the tool_use ids t1 of the message before have no "
                                            "tool_result block here"):
        anthropic.check_request(_history("t1", None))
    lone = {"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t9", "content": "x"}]}]}
    with pytest.raises(ProtocolError, match="it has none"):
        anthropic.check_request(lone)


@pytest.mark.parametrize(("body", "message"), [
    ({"max_tokens": 1_000_000_000}, "max_tokens: must be in [1, 65536], got 1000000000"),
    ({"max_tokens": 5, "temperature": 1.5}, "temperature: must be in [0.0, 1.0], got 1.5"),
])
def test_anthropics_own_ranges_name_its_own_fields(body: dict, message: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        anthropic.check_request({"model": "m", "messages": [{"role": "user", "content": "x"}], **body})
    assert str(refused.value) == message


def test_a_count_body_takes_no_generation_fields() -> None:
    with pytest.raises(ProtocolError) as refused:
        anthropic.check_request({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
                                count=True)
    assert refused.value.field == "max_tokens"
    assert anthropic.check_request({"model": "m", "messages": [{"role": "user", "content": "x"}]}, count=True)
