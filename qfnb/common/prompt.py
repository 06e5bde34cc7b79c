"""The official ``qianfan.common.prompt`` path: re-exports :mod:`qfnb.resources.prompts.template`."""

from qfnb.resources.prompts.template import Identifier, Prompt, PromptLabel

__all__ = ["Identifier", "Prompt", "PromptLabel"]
