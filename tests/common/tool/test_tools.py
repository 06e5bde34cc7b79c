"""``qfnb.common.tool`` (defined in :mod:`qfnb.resources.tools`): a tool as a function-call schema, and
the platform's web search asked for through a chat model's ``tools``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from qfnb import ChatCompletion, Completion, QfResponse
from qfnb._core.config import Config
from qfnb.common.tool import BaiduSearchTool, BaseTool, ToolParameter
from tests.fakes.cloud import FakeQianfan
from tests.fakes.fixtures import fake, fake_in_process, fake_server, make_config

__all__ = ["fake", "fake_in_process", "fake_server", "make_config"]


class Weather(BaseTool):
    name = "weather"
    description = "the weather of a city"
    parameters: ClassVar[list[ToolParameter]] = [
        ToolParameter(name="city", type="string", description="a city", required=True),
        ToolParameter(name="when", type="object", properties=[ToolParameter(name="day", type="integer",
                                                                            required=True)]),
    ]

    def run(self, **parameters: Any) -> str:
        return f"sunny in {parameters['city']}"


def test_a_tool_is_a_function_call_schema_and_back() -> None:
    schema = Weather().to_function_call_schema()
    assert schema == {"name": "weather", "description": "the weather of a city", "parameters": {
        "type": "object", "required": ["city"],
        "properties": {"city": {"type": "string", "description": "a city"},
                       "when": {"type": "object", "properties": {"day": {"type": "integer"}}, "required": ["day"]}}}}
    back = ToolParameter.from_json_schema(schema["parameters"], "root")
    assert [(p.name, p.required) for p in back.properties or []] == [("city", True), ("when", False)]
    model = Weather.parameters[1].to_pydantic_model()
    assert issubclass(model, BaseModel) and model(day=3).model_dump() == {"day": 3}
    assert Weather().run(city="Paris") == "sunny in Paris"


def test_baidu_search_asks_for_the_platform_tool_and_returns_the_references() -> None:
    sent: list[dict[str, Any]] = []

    class Chat:
        def do(self, **body: Any) -> Any:
            sent.append(body)
            return QfResponse(200, {}, {"result": "summary", "tools_info": {
                "name": "baidu_search", "baidu_search": [{"url": "https://example.com"}]}})

    tool = BaiduSearchTool(top_n=3, client=Chat(), with_reference=True)
    assert tool.run(search_query="qfnb") == {"summary": "summary", "reference": [{"url": "https://example.com"}]}
    assert sent[0]["messages"] == [{"role": "user", "content": "qfnb"}]
    assert sent[0]["tools"][0]["tool"]["baidu_search"] == {"channel": "normal", "top_n": 3}


@pytest.mark.parametrize("client_type", [Completion, ChatCompletion])
def test_baidu_search_goes_out_through_a_real_resource_with_the_platform_tool_chosen(
        fake: FakeQianfan, make_config: Callable[..., Config], client_type: type) -> None:
    # the official tool's request: a v1 ``tools`` entry of type "tool" and ``tool_choice`` naming it
    # (qfnb's check of OpenAI's function choice refused it before a byte was sent)
    tool = BaiduSearchTool(client=client_type(model="ERNIE-Speed-8K", config=make_config("oauth")))
    answer = tool.run(search_query="上海天气")
    assert answer == "echo[ernie_speed]: 上海天气"
    sent = fake.calls("/chat/")[0].json
    assert sent["tool_choice"] == {"type": "tool", "tool": {"name": "baidu_search"}}
    assert sent["tools"] == [{"type": "tool", "tool": {"name": "baidu_search",
                                                       "baidu_search": {"channel": "normal", "top_n": 2}}}]
