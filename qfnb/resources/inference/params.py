"""The typed arguments of each inference call.

``ado``/``do`` build one of these from their named parameters (``ChatCall(messages=messages,
...)``) and hand it to :meth:`BaseInference._acall`; ``_body`` reads its fields into the wire
body that the client sends. So a reader, or a tool, follows ``messages`` from
``ChatCompletion.do`` to the transport. No ``locals()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .messages import Messages

__all__ = ["CONTINUE_PROMPT", "Call", "ChatCall", "ChatMessages", "CompletionCall", "EmbeddingCall",
           "Image2TextCall", "PluginCall", "RerankerCall", "Text2ImageCall"]

#: a conversation: ``[{"role": "user", "content": "你好"}, ...]`` or :class:`Messages`
ChatMessages = Sequence[Mapping[str, Any]] | Messages
#: what ``auto_concat_truncate`` sends to ask for the rest of a truncated answer (the SDK's default)
CONTINUE_PROMPT = "继续"


@dataclass(frozen=True, kw_only=True)
class Call:
    """What every call carries: where it goes and how it is sent (never in the body), and
    ``extra``, the ``**kwargs`` passthrough (further body fields, sent as given; a few SDK
    options such as ``retry_jitter`` are read from it and kept out of the body)."""

    model: str | None = None
    endpoint: str | None = None
    stream: bool = False
    retry_count: int | None = None
    request_timeout: float | None = None
    request_id: str | None = None
    backoff_factor: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        """The resource's own body fields, by their wire names (``None`` ones are not sent)."""
        return {}


@dataclass(frozen=True, kw_only=True)
class ChatCall(Call):
    """:meth:`ChatCompletion.ado`'s arguments."""

    messages: ChatMessages
    auto_concat_truncate: bool = False
    truncated_continue_prompt: str = CONTINUE_PROMPT
    truncate_overlong_msgs: bool = False
    system: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    penalty_score: float | None = None
    stop: list[str] | None = None
    max_output_tokens: int | None = None
    user_id: str | None = None

    def fields(self) -> dict[str, Any]:
        messages = self.messages.to_list() if isinstance(self.messages, Messages) else self.messages
        return {"messages": messages, "system": self.system, "temperature": self.temperature,
                "top_p": self.top_p, "top_k": self.top_k, "penalty_score": self.penalty_score, "stop": self.stop,
                "max_output_tokens": self.max_output_tokens, "user_id": self.user_id}


@dataclass(frozen=True, kw_only=True)
class CompletionCall(Call):
    """:meth:`Completion.ado`'s arguments."""

    prompt: str
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    penalty_score: float | None = None
    stop: list[str] | None = None
    max_output_tokens: int | None = None
    user_id: str | None = None

    def fields(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                "penalty_score": self.penalty_score, "stop": self.stop,
                "max_output_tokens": self.max_output_tokens, "user_id": self.user_id}


@dataclass(frozen=True, kw_only=True)
class PluginCall(Call):
    """:meth:`Plugin.ado`'s arguments."""

    query: str | ChatMessages | None = None
    plugins: list[str] | None = None
    prompt: str | None = None
    messages: ChatMessages | None = None

    def fields(self) -> dict[str, Any]:
        return {"query": self.query, "plugins": self.plugins, "prompt": self.prompt, "messages": self.messages}


@dataclass(frozen=True, kw_only=True)
class Image2TextCall(Call):
    """:meth:`Image2Text.ado`'s arguments."""

    prompt: str
    image: str | bytes

    def fields(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "image": self.image}


@dataclass(frozen=True, kw_only=True)
class EmbeddingCall(Call):
    """:meth:`Embedding.ado`'s arguments (``texts`` go on the wire as ``input``)."""

    texts: list[str]
    user_id: str | None = None

    def fields(self) -> dict[str, Any]:
        return {"input": self.texts, "user_id": self.user_id}


@dataclass(frozen=True, kw_only=True)
class RerankerCall(Call):
    """:meth:`Reranker.ado`'s arguments."""

    query: str
    documents: Sequence[str]
    top_n: int | None = None

    def fields(self) -> dict[str, Any]:
        return {"query": self.query, "documents": self.documents, "top_n": self.top_n}


@dataclass(frozen=True, kw_only=True)
class Text2ImageCall(Call):
    """:meth:`Text2Image.ado`'s arguments."""

    prompt: str
    with_decode: str | None = None
    negative_prompt: str | None = None
    size: str | None = None
    n: int | None = None
    steps: int | None = None
    sampler_index: str | None = None
    seed: int | None = None
    cfg_scale: float | None = None
    style: str | None = None
    user_id: str | None = None

    def fields(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "negative_prompt": self.negative_prompt, "size": self.size, "n": self.n,
                "steps": self.steps, "sampler_index": self.sampler_index, "seed": self.seed,
                "cfg_scale": self.cfg_scale, "style": self.style, "user_id": self.user_id}
