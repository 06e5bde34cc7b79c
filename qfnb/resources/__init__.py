"""The seed API. Inference names live in :mod:`qfnb.resources.inference`; console names
(``FineTune``, ``Model``, ``Service``, ``Data``...) in :mod:`qfnb.resources.console`, both loaded on
first use. May import ``qfnb._core`` and ``qfnb.protocol`` only.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_INFERENCE = ("ChatCompletion", "Completion", "Embedding", "Plugin", "Text2Image", "Messages", "QfResponse",
              "QfRole", "BatchFuture", "read_results", "QfMessages", "Role", "Response", "Image2Text",
              "Reranker", "Tokenizer", "Function", "QfLLMInfo")

if TYPE_CHECKING:  # pragma: no cover
    # the seed's import paths (``from qfnb.resources import FineTune``) typed to mypy and IDEs;
    # at run time __getattr__ imports them on first use
    from .console import IAM as IAM
    from .console import Charge as Charge
    from .console import Data as Data
    from .console import FineTune as FineTune
    from .console import Memory as Memory
    from .console import Model as Model
    from .console import Prompt as Prompt
    from .console import Service as Service
    from .inference import (
        BatchFuture,
        ChatCompletion,
        Completion,
        Embedding,
        Function,
        Image2Text,
        Messages,
        Plugin,
        QfResponse,
        QfRole,
        Reranker,
        Text2Image,
        Tokenizer,
        read_results,
    )

__all__ = ["BatchFuture", "ChatCompletion", "Completion", "Embedding", "Function", "Image2Text", "Messages", "Plugin",
           "QfResponse", "QfRole", "Reranker", "Text2Image", "Tokenizer", "read_results"]


def __getattr__(name: str) -> Any:
    if name in _INFERENCE:
        value = getattr(importlib.import_module("qfnb.resources.inference"), name)
    elif name.startswith("_"):
        raise AttributeError(name)
    else:
        console = importlib.import_module("qfnb.resources.console")
        if not hasattr(console, name):
            raise AttributeError(f"module 'qfnb.resources' has no attribute {name!r}")
        value = getattr(console, name)
    globals()[name] = value
    return value
