"""The cloud catalogue names the official SDK's docs use, served offline by the local models.

``ERNIE-Bot`` & co. and the platform's default chat model answer with the first local chat
model (Qwen2.5-Coder-0.5B-Instruct out of the box). Each cloud name goes to the local model closest
in kind and language: the Chinese and multilingual embedders (``Embedding-V1``, ``bge-large-zh``,
``tao-8k``) to the multilingual embedder, ``bge-large-en`` to the English one, the rerankers to a
cross-encoder when one is added (``qfnb models add x.gguf --role rerank``), else to the default
reranker. ``QFNB_MODEL_ALIASES`` is consulted before these. Responses carry the real model's name,
and the client shows the mapping once per process where the user looks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TypeVar

from qfnb.local.engines.api import ServedLike
from qfnb.protocol.console.model_names import LOCAL_ENGLISH_EMBEDDING_MODEL
from qfnb.protocol.wires.qianfan.routes import builtin_endpoint, default_model

M = TypeVar("M", bound=ServedLike)

__all__ = ["FINETUNE_NAMES", "SEED_NAMES", "mapping", "seed_model"]

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

#: catalogue names whose closest local model is a named one (when it is served)
_PREFERRED = {"bge-large-en": LOCAL_ENGLISH_EMBEDDING_MODEL}

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
    model = _closest(api_type, name, models)
    notice(name, str(model.name))
    return model


def _closest(api_type: str, name: str, models: Sequence[M]) -> M:
    """The local model closest in kind and language to catalogue name ``name`` (``models`` non-empty)."""
    preferred = _PREFERRED.get(name.lower())
    for model in models:
        if preferred is not None and str(model.name) == preferred:
            return model
    if api_type == "reranker":  # a cross-encoder (a reranking GGUF on llama-server) before any cosine ranker
        return next((m for m in models if m.kind == "llama.cpp"), models[0])
    return models[0]


def mapping(models: Sequence[M]) -> list[tuple[str, str, str]]:
    """(api type, catalogue name, local model that answers it) for every catalogue name now."""
    served = {api_type: [m for m in models if api_type in m.api_types] for api_type in SEED_NAMES
              if api_type != "completions"}
    return [(api_type, name, str(_closest(api_type, name, found).name))
            for api_type, found in served.items() if found for name in SEED_NAMES[api_type]]
