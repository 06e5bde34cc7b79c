"""``Embedding``: texts → vectors (``texts=[...]``, at most 16 per call)."""

from __future__ import annotations

from typing import Any, ClassVar

from qfnb._core.errors import ValidationError

from ._generated.embedding import EmbeddingCalls
from .base import Target
from .params import EmbeddingCall

__all__ = ["Embedding"]


class Embedding(EmbeddingCalls):
    """``Embedding().do(texts=["世界上最高的山"])["data"][0]["embedding"]``."""

    api_types: ClassVar[tuple[str, ...]] = ("embeddings",)
    batch_field: ClassVar[str] = "texts"

    def _body(self, target: Target, call: EmbeddingCall) -> tuple[Target, dict[str, Any]]:
        fields = self._given(call)
        if fields.get("stream"):
            raise ValidationError("stream", "embeddings cannot be streamed")
        if "input" not in fields:
            raise ValidationError("texts", "is required")
        body = self._wire_body(fields, False)
        # deferred: loads pydantic (`qfnb.ChatCompletion` does not)
        from qfnb.protocol.inference import EmbeddingRequest, parse_request
        parse_request(EmbeddingRequest, body)
        return target, body
