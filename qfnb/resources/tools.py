"""Tools a model can call (the official ``qianfan.common.tool``): :class:`BaseTool` and
:class:`ToolParameter`, a tool described to a model as a function-call schema, and the
platform's :class:`BaiduSearchTool`, the web searched and summarised by a model."""

from __future__ import annotations

import builtins
from typing import Any, ClassVar

from pydantic import BaseModel, Field, create_model

from qfnb.resources.inference.completion import Completion

__all__ = ["BaiduSearchTool", "BaseTool", "ToolParameter"]

_PY_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool, "object": dict,
                             "array": list}


class ToolParameter(BaseModel):
    """One parameter of a tool: its name, JSON-schema ``type``, description, whether it is
    required, and (for ``type="object"``) its properties."""

    name: str
    type: str
    description: str | None = None
    properties: list[ToolParameter] | None = None
    required: bool | None = False

    def to_json_schema(self) -> dict[str, Any]:
        """The parameter as JSON schema (an object's required properties listed)."""
        schema: dict[str, Any] = {"type": self.type}
        if self.description:
            schema["description"] = self.description
        if self.properties:
            schema["properties"] = {p.name: p.to_json_schema() for p in self.properties}
            required = [p.name for p in self.properties if p.required]
            if required:
                schema["required"] = required
        return schema

    def to_pydantic_model(self) -> builtins.type[BaseModel]:
        """A pydantic model with this object parameter's properties as fields."""
        fields: dict[str, Any] = {}
        for prop in self.properties or []:
            kind = prop.to_pydantic_model() if prop.type == "object" else _PY_TYPES.get(prop.type, Any)
            fields[prop.name] = (kind if prop.required else kind | None,
                                 Field(... if prop.required else None, description=prop.description))
        model: builtins.type[BaseModel] = create_model(f"{self.name.title().replace('_', '')}Parameters", **fields)
        return model

    @staticmethod
    def from_json_schema(schema: dict[str, Any], name: str | None = None) -> ToolParameter:
        """A parameter from JSON schema (e.g. a pydantic model's ``model_json_schema()``)."""
        props = None
        if "properties" in schema:
            required = set(schema.get("required", []))
            props = [ToolParameter.from_json_schema(s, n).model_copy(update={"required": n in required})
                     for n, s in schema["properties"].items()]
        return ToolParameter(name=name or schema.get("title", "root"), type=schema.get("type", "object"),
                             description=schema.get("description"), properties=props)


class BaseTool:
    """A tool: subclasses set ``name``, ``description`` and ``parameters`` and implement ``run``."""

    name: str
    description: str
    parameters: ClassVar[list[ToolParameter]]

    def run(self, **parameters: Any) -> Any:
        """Run the tool on the model's arguments."""
        raise NotImplementedError(f"{type(self).__name__}.run is not implemented")

    def to_function_call_schema(self) -> dict[str, Any]:
        """The function description a chat model takes in ``functions=[...]``."""
        root = ToolParameter(name="root", type="object", properties=self.parameters)
        return {"name": self.name, "description": self.description, "parameters": root.to_json_schema()}


class BaiduSearchTool(BaseTool):
    """Search the web with the platform's ``baidu_search`` tool and have a model summarise the
    ``top_n`` results (``with_reference=True``: also return the references)."""

    name = "baidu_search"
    description = "使用百度搜索引擎，在互联网上检索任何实时最新的相关信息"
    parameters: ClassVar[list[ToolParameter]] = [
        ToolParameter(name="search_query", type="string", description="搜索的关键词或短语", required=True)]

    def __init__(self, top_n: int = 2, channel: str = "normal", client: Any = None,
                 with_reference: bool = False) -> None:
        self.top_n = top_n
        self.channel = channel
        self.client = client if client is not None else Completion(model="ERNIE-Speed-8K")
        self.with_reference = with_reference

    def run(self, **parameters: Any) -> str | dict[str, Any]:
        query = parameters["search_query"]
        tool = {"type": "tool", "tool": {"name": "baidu_search",
                                         "baidu_search": {"channel": self.channel, "top_n": self.top_n}}}
        params: dict[str, Any] = {"tools": [tool], "tool_choice": {"type": "tool", "tool": {"name": "baidu_search"}}}
        if isinstance(self.client, Completion):
            resp = self.client.do(prompt=query, **params)
        else:
            resp = self.client.do(messages=[{"role": "user", "content": query}], **params)
        if not self.with_reference:
            return str(resp.result)
        info = resp.body.get("tools_info") or {}
        reference = info.get("baidu_search", []) if info.get("name") == "baidu_search" else []
        return {"summary": resp.result, "reference": reference}
