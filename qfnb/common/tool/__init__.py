"""The official ``qianfan.common.tool``: tools a model can call, defined in :mod:`qfnb.resources.tools`.
An official-SDK mirror of names owned by the layers: may import any layer; no layer imports it
(``qfnb.common`` is a fence around the package, never a floor)."""

from qfnb.resources.tools import BaiduSearchTool, BaseTool, ToolParameter

__all__ = ["BaiduSearchTool", "BaseTool", "ToolParameter"]
