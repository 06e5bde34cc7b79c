"""v1 chat's choice of one of the platform's own tools (ERNIE's ``baidu_search``, the official
``BaiduSearchTool``'s request) beside OpenAI's choice of a function."""

from __future__ import annotations

from typing import Any

import pytest

from qfnb.protocol.errors import ProtocolError
from qfnb.protocol.wires.qianfan.inference import ChatRequest, parse_request

HI = [{"role": "user", "content": "上海天气"}]
SEARCH = {"type": "tool", "tool": {"name": "baidu_search", "baidu_search": {"channel": "normal", "top_n": 2}}}


def test_a_platform_tool_offered_in_tools_can_be_chosen() -> None:
    request = parse_request(ChatRequest, {"messages": HI, "tools": [SEARCH],
                                          "tool_choice": {"type": "tool", "tool": {"name": "baidu_search"}}})
    assert request.tool_choice == {"type": "tool", "tool": {"name": "baidu_search"}}


@pytest.mark.parametrize(("tools", "choice", "field", "words"), [
    ([SEARCH], {"type": "tool", "tool": {"name": "web_search"}}, "tool_choice.tool.name", "not one of the tools given"),
    (None, {"type": "tool", "tool": {"name": "baidu_search"}}, "tool_choice.tool.name", "(none)"),
    ([SEARCH], {"type": "tool", "tool": "baidu_search"}, "tool_choice.tool", '{"type": "tool", "tool": {"name"'),
    ([SEARCH], {"type": "tools"}, "tool_choice", '{"type": "function"'),  # neither form: OpenAI's check speaks
])
def test_a_platform_tool_choice_names_a_tool_that_is_offered(tools: Any, choice: Any, field: str, words: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_request(ChatRequest, {"messages": HI, "tools": tools, "tool_choice": choice})
    assert caught.value.field == field
    assert words in str(caught.value)
