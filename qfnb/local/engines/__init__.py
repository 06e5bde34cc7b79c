"""Local inference engines (Contract 7): llama.cpp, transformers and sentence-embedding backends."""

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
from qfnb.local.engines.registry import DEFAULT_CHAT, GEMMA, MINILM, EngineRegistry, endpoint_for

__all__ = [
    "DEFAULT_CHAT",
    "FINISH_LENGTH",
    "FINISH_NORMAL",
    "FINISH_STOP",
    "GEMMA",
    "MINILM",
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
