"""The official ``qianfan.common.prompt`` path: re-exports :mod:`qfnb.resources.prompt_template`."""

from qfnb.resources.prompt_template import Identifier, Prompt, PromptLabel

__all__ = ["Identifier", "Prompt", "PromptLabel"]
