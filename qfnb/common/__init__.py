"""The official SDK's ``qianfan.common``: client-side prompts (:class:`Prompt`, saved and loaded
through :mod:`qfnb.common.hub`), tools for function calling (:mod:`qfnb.common.tool`), and the
command line (:mod:`qfnb.common.cli`). Names load on first use, so the command line (which lives
here) starts without importing the SDK."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {"Prompt": "qfnb.common.prompt", "PromptLabel": "qfnb.common.prompt", "cli": "qfnb.common.cli",
         "client": "qfnb.common.cli", "hub": "qfnb.common.hub"}

__all__ = ["Prompt", "PromptLabel", "cli", "client", "hub"]

if TYPE_CHECKING:  # pragma: no cover
    from qfnb.common import cli as cli
    from qfnb.common import hub as hub
    from qfnb.common.prompt import Prompt as Prompt
    from qfnb.common.prompt import PromptLabel as PromptLabel


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'qfnb.common' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if name in ("cli", "client", "hub") else getattr(mod, name)
    globals()[name] = value
    return value
