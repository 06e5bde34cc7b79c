"""The official ``qianfan.common.tool``: tools a model can call, defined in :mod:`qfnb.resources.tools`."""

from qfnb.resources.tools import BaiduSearchTool, BaseTool, ToolParameter

__all__ = ["BaiduSearchTool", "BaseTool", "ToolParameter"]
