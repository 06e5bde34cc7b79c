"""Tools a model can call: :class:`BaseTool` (name, description, parameters, ``run``) and the
platform's :class:`BaiduSearchTool`."""

from .baidu_search_tool import BaiduSearchTool
from .base_tool import BaseTool, ToolParameter

__all__ = ["BaiduSearchTool", "BaseTool", "ToolParameter"]
