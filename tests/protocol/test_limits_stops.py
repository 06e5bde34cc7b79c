"""The one stop-list and true-or-false rule (``limits.check_stops``, ``limits.check_flags``), as each wire applies
it: Qianfan's stops are short, OpenAI's may be one string, Messages' ``stop_sequences`` a list only."""

from __future__ import annotations

from typing import Any

import pytest

from qfnb.protocol import ProtocolError
from qfnb.protocol.limits import STOP_CHARS, STOP_ITEMS, check_flags, check_stops
from qfnb.protocol.wires.anthropic.messages import check_request as check_messages
from qfnb.protocol.wires.openai.requests import check_openai_chat
from qfnb.protocol.wires.qianfan.inference import ChatRequest, parse_request

TURN = [{"role": "user", "content": "hi"}]


def _refused(check: Any, body: dict[str, Any]) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        check(body)
    return info.value


def test_each_wire_takes_its_own_stops_and_names_the_field() -> None:
    qianfan = lambda body: parse_request(ChatRequest, {"messages": TURN, **body})  # noqa: E731
    openai = lambda body: check_openai_chat({"model": "m", "messages": TURN, **body})  # noqa: E731
    messages = lambda body: check_messages({"model": "m", "max_tokens": 8, "messages": TURN, **body})  # noqa: E731
    qianfan({"stop": ["x" * STOP_CHARS]})
    openai({"stop": "END"})
    openai({"stop": ["x" * (STOP_CHARS + 1)]})  # OpenAI has no length cap
    messages({"stop_sequences": ["END"] * STOP_ITEMS})
    too_long = _refused(qianfan, {"stop": ["x" * (STOP_CHARS + 1)]})
    assert too_long.field == "stop" and f"at most {STOP_CHARS} characters" in str(too_long)
    assert _refused(qianfan, {"stop": "END"}).field == "stop"
    assert "a string or a list" in str(_refused(openai, {"stop": ["END", ""]}))
    assert _refused(messages, {"stop_sequences": ["END"] * (STOP_ITEMS + 1)}).field == "stop_sequences"
    assert _refused(messages, {"stop_sequences": "END"}).field == "stop_sequences"


def test_a_flag_is_true_or_false_on_every_wire() -> None:
    for field in ("stream", "logprobs", "store", "parallel_tool_calls"):
        problem = _refused(check_openai_chat, {"model": "m", "messages": TURN, field: "yes"})
        assert problem.field == field and "must be true or false, got str" in str(problem)
    assert _refused(lambda body: parse_request(ChatRequest, body), {"messages": TURN, "stream": 1}).field == "stream"
    check_flags({"stream": None, "store": False}, "stream", "store")
    check_stops("stop", None)
