"""The official ``qianfan.common.tool.base_tool`` path: re-exports :mod:`qfnb.resources.tools`."""

from qfnb.resources.tools import BaseTool, ToolParameter

__all__ = ["BaseTool", "ToolParameter"]
