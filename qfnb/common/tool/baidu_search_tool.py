"""The official ``qianfan.common.tool.baidu_search_tool`` path: re-exports :mod:`qfnb.resources.tools`."""

from qfnb.resources.tools import BaiduSearchTool

__all__ = ["BaiduSearchTool"]
