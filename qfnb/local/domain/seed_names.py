"""The cloud catalogue names the official SDK's docs use, served offline by the local models.

``ERNIE-Bot`` & co. and the platform's default chat model answer with the first local chat
model (Qwen2.5-Coder-0.5B-Instruct out of the box); ``Embedding-V1``/``bge-*`` with the first
local embedder (all-MiniLM-L6-v2). ``QFNB_MODEL_ALIASES`` is consulted before these. One notice
per process and name says what actually answers; responses carry the real model's name.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TypeVar

from qfnb.local.engines.api import ServedLike
from qfnb.protocol.routes import builtin_endpoint, default_model

M = TypeVar("M", bound=ServedLike)

__all__ = ["FINETUNE_NAMES", "SEED_NAMES", "seed_model"]

log = logging.getLogger("qfnb.local")

_CHAT = ("ERNIE-Bot", "ERNIE-Bot-turbo", "ERNIE-Bot-4", "ERNIE-Speed-8K", "ERNIE-Lite-8K",
         "ERNIE-3.5-8K", "ERNIE-4.0-8K", "ERNIE-Speed-128K", "ERNIE-Tiny-8K")
_EMBED = ("Embedding-V1", "bge-large-zh", "bge-large-en", "tao-8k")

#: api type -> catalogue names served by the first local model of that type
SEED_NAMES: dict[str, tuple[str, ...]] = {"chat": _CHAT, "completions": _CHAT, "embeddings": _EMBED,
                                          "reranker": ("bce-reranker-base_v1", "bce-reranker-base")}
#: base models of fine-tuning requests taken as the first local trainable model (seed 002)
FINETUNE_NAMES = ("ERNIE-Bot-turbo", "ERNIE-Bot-turbo-0725", "ERNIE-Bot-turbo-0922", "ERNIE-Speed",
                  "ERNIE-Speed-8K", "ERNIE-Lite-8K", "ERNIE-Lite-8K-0922", "ERNIE-Tiny-8K")

_noticed: set[tuple[str, str]] = set()
_lock = threading.Lock()


def _keys(api_type: str) -> dict[str, str]:
    """Request keys (names and their cloud endpoints, lower-case) -> catalogue name."""
    names = list(SEED_NAMES.get(api_type, ()))
    default = default_model(api_type)
    if default and api_type in SEED_NAMES:
        names.append(default)
    out: dict[str, str] = {}
    for name in names:
        out[name.lower()] = name
        endpoint = builtin_endpoint(api_type, name) or builtin_endpoint("chat", name)
        if endpoint:
            out.setdefault(endpoint.lower(), name)
    return out


def notice(requested: str, served: str) -> None:
    """Log once per process and name which local model answers a catalogue name."""
    with _lock:
        if (requested, served) in _noticed:
            return
        _noticed.add((requested, served))
    log.info("%s is a cloud model: the local platform answers it with %s (set QFNB_MODEL_ALIASES to "
             "choose another local model)", requested, served)


def seed_model(api_type: str, key: str, models: Sequence[M]) -> M | None:
    """The local model answering catalogue name/endpoint ``key`` for ``api_type``, or None."""
    name = _keys(api_type).get(key.lower())
    if name is None or not models:
        return None
    model = models[0]
    notice(name, str(model.name))
    return model
