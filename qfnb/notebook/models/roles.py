"""What each model is for: a chat model answers, a base model only continues text.

A pretrained base model (Gemma-3-270M here) served as a chat model does not answer a question:
it continues the prompt ("Question 2 of 10 …") until its token budget runs out. ``%qfmodels``
shows each model's role, Tab completion after ``%%qfchat -m`` leaves base models out, and a
chat with one anyway says so in its footer and is capped at :data:`BASE_CAP` tokens unless
``--max-tokens`` says otherwise.
"""

from __future__ import annotations

import re

__all__ = ["BASE_CAP", "is_base", "role"]

#: pretrained models that are not instruction-tuned (lower case)
BASE_MODELS = frozenset({"gemma-3-270m"})
_BASE_NAME = re.compile(r"(^|[-_])(base|pt)$")
#: the default answer length of a chat with a base model
BASE_CAP = 128
_ROLES = {"embedding": "embedding", "reranker": "rerank", "text-to-image": "image", "endpoint": "deployed (fine-tuned)"}
#: a reranker that is also an embedding model ranks by its vectors' cosine (the local default)
BY_EMBEDDING = "rerank (embedding cosine)"


def is_base(name: str | None) -> bool:
    """Whether ``name`` is a base (not instruction-tuned) model."""
    low = (name or "").lower()
    return low in BASE_MODELS or bool(_BASE_NAME.search(low))


def role(kind: str, name: str, *, embeds: bool = False) -> str:
    """``%qfmodels``' role column: chat, base (text completion), embedding, rerank, image, deployed.
    ``embeds``: the same model serves embeddings too (a reranker that ranks by their cosine)."""
    if kind == "reranker" and embeds:
        return BY_EMBEDDING
    if kind in _ROLES:
        return _ROLES[kind]
    return "base (continues text)" if is_base(name) else "chat"


def base_note(max_tokens: int | None) -> str:
    """The footer's word for a chat with a base model."""
    cap = f"capped at {BASE_CAP} tokens (--max-tokens to change)" if max_tokens is None else ""
    return "base model: continues text, not instruction-tuned" + (f" · {cap}" if cap else "")
