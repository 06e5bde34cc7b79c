"""A call's arguments given back in a history must be a JSON object: a model's broken arguments
are refused by name as the client's mistake (a 400 on the OpenAI wire, v1's messages code),
before the engine fails on them and the platform answers "retry shortly" (issue 54)."""

from __future__ import annotations

from typing import Any

import pytest

from qfnb.protocol.errors import ErrorCode, ProtocolError
from qfnb.protocol.wires.chat.tools import check_chat_turn
from qfnb.protocol.wires.qianfan.inference import validate_messages


def _assistant(arguments: str) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "w", "arguments": arguments}}]}


@pytest.mark.parametrize(("arguments", "why"), [
    ("{bad", "is not valid JSON"), ("", "is not valid JSON"), ("[1, 2]", "must be a JSON object"),
    ('"text"', "must be a JSON object")])
def test_an_openai_turns_broken_arguments_are_refused_by_name(arguments: str, why: str) -> None:
    with pytest.raises(ProtocolError, match=why) as caught:
        check_chat_turn(_assistant(arguments), 1)
    assert caught.value.field == "messages[1].tool_calls[0].function.arguments"
    assert caught.value.code == ErrorCode.INVALID_PARAM
    check_chat_turn(_assistant('{"city": "Oslo"}'), 1)


def test_a_v1_function_calls_broken_arguments_are_refused_by_name() -> None:
    history: list[dict[str, Any]] = [{"role": "user", "content": "weather?"},
               {"role": "assistant", "content": "", "function_call": {"name": "w", "arguments": "{bad"}},
               {"role": "function", "name": "w", "content": "rain"}]
    with pytest.raises(ProtocolError, match="is not valid JSON") as caught:
        validate_messages(history)
    assert caught.value.field == "messages[1].function_call.arguments"
    assert caught.value.code == ErrorCode.INVALID_MESSAGES
    history[1]["function_call"]["arguments"] = '{"city": "Oslo"}'
    assert validate_messages(history)[1]["function_call"]["name"] == "w"
