"""The official SDK's ``qianfan.common``: client-side prompts (:class:`Prompt`, saved and loaded
through :mod:`qfnb.common.hub`), tools for function calling (:mod:`qfnb.common.tool`), and the
command line (:mod:`qfnb.common.cli`)."""

from qfnb.common import cli, hub
from qfnb.common.prompt import Prompt, PromptLabel

client = cli

__all__ = ["Prompt", "PromptLabel", "cli", "client", "hub"]
