"""``BaiduSearchTool``: the platform's web search, summarised by a model."""

from __future__ import annotations

from typing import Any, ClassVar

from .base_tool import BaseTool, ToolParameter

__all__ = ["BaiduSearchTool"]


class BaiduSearchTool(BaseTool):
    """Search the web with the platform's ``baidu_search`` tool and have a model summarise the
    ``top_n`` results (``with_reference=True``: also return the references)."""

    name = "baidu_search"
    description = "使用百度搜索引擎，在互联网上检索任何实时最新的相关信息"
    parameters: ClassVar[list[ToolParameter]] = [
        ToolParameter(name="search_query", type="string", description="搜索的关键词或短语", required=True)]

    def __init__(self, top_n: int = 2, channel: str = "normal", client: Any = None,
                 with_reference: bool = False) -> None:
        from qfnb.resources import Completion

        self.top_n = top_n
        self.channel = channel
        self.client = client if client is not None else Completion(model="ERNIE-Speed-8K")
        self.with_reference = with_reference

    def run(self, **parameters: Any) -> str | dict[str, Any]:
        from qfnb.resources import Completion

        query = parameters["search_query"]
        tool = {"type": "tool", "tool": {"name": "baidu_search",
                                         "baidu_search": {"channel": self.channel, "top_n": self.top_n}}}
        params: dict[str, Any] = {"tools": [tool], "tool_choice": {"type": "tool", "tool": {"name": "baidu_search"}}}
        if isinstance(self.client, Completion):
            resp = self.client.do(prompt=query, **params)
        else:
            resp = self.client.do(messages=[{"role": "user", "content": query}], **params)
        if not self.with_reference:
            return str(resp["result"])
        info = resp.body.get("tools_info") or {}
        reference = info.get("baidu_search", []) if info.get("name") == "baidu_search" else []
        return {"summary": resp["result"], "reference": reference}
