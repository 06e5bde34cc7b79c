"""Local inference engines (Contract 7): the typed ask (``ask``), the one engine face (``api``: ``Engine.generate``),
admission (``gate``, ``lanes``) and the registry here; by kind in ``llama``, ``hf``, ``store`` and ``adapters``.
The bottom room: imports ``qfnb.protocol`` only, never another room of ``qfnb.local``."""

from qfnb.local.engines.base import ModelSpec, PromptTooLong, UnknownModel
from qfnb.local.engines.catalog import DEFAULT_CHAT, GEMMA
from qfnb.local.engines.registry import EngineRegistry, endpoint_for

__all__ = [
    "DEFAULT_CHAT",
    "GEMMA",
    "EngineRegistry",
    "ModelSpec",
    "PromptTooLong",
    "UnknownModel",
    "endpoint_for",
]
