"""Local inference engines (Contract 7): the typed ask (``ask``), the one engine face (``api``: ``Engine.generate``),
admission (``gate``, ``lanes``) and the registry here; by kind in ``llama``, ``hf``, ``store`` and ``adapters``.
The bottom room: imports ``qfnb.protocol`` only, never another room of ``qfnb.local``."""

from qfnb.local.engines.base import (
    FINISH_LENGTH,
    FINISH_NORMAL,
    FINISH_STOP,
    ChatEngine,
    Delta,
    Embedder,
    ModelSpec,
    PromptTooLong,
    ServedModel,
    UnknownModel,
)
from qfnb.local.engines.catalog import DEFAULT_CHAT, GEMMA, MINILM, MULTILINGUAL
from qfnb.local.engines.registry import EngineRegistry, endpoint_for

__all__ = [
    "DEFAULT_CHAT",
    "FINISH_LENGTH",
    "FINISH_NORMAL",
    "FINISH_STOP",
    "GEMMA",
    "MINILM",
    "MULTILINGUAL",
    "ChatEngine",
    "Delta",
    "Embedder",
    "EngineRegistry",
    "ModelSpec",
    "PromptTooLong",
    "ServedModel",
    "UnknownModel",
    "endpoint_for",
]
