"""``qfnb.common.tool`` (defined in :mod:`qfnb.resources.tools`): a tool as a function-call schema, and
the platform's web search asked for through a chat model's ``tools``."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from qfnb import QfResponse
from qfnb.common.tool import BaiduSearchTool, BaseTool, ToolParameter


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
