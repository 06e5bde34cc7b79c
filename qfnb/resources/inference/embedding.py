"""``Embedding``: texts → vectors (``texts=[...]``, at most 16 per call)."""

from __future__ import annotations

from typing import Any, ClassVar

from qfnb._core.errors import ValidationError

from .base import BaseInference, Target

__all__ = ["Embedding"]


class Embedding(BaseInference):
    """``Embedding().do(texts=["世界上最高的山"])["data"][0]["embedding"]``."""

    api_types: ClassVar[tuple[str, ...]] = ("embeddings",)
    batch_field: ClassVar[str] = "texts"

    def _body(self, target: Target, kwargs: dict[str, Any]) -> tuple[Target, dict[str, Any]]:
        if kwargs.get("stream"):
            raise ValidationError("stream", "embeddings cannot be streamed")
        if "texts" not in kwargs:
            raise ValidationError("texts", "is required")
        rest = {k: v for k, v in kwargs.items() if k != "texts"}
        body = self._wire_body({**rest, "input": kwargs["texts"]}, False)
        from qfnb.protocol.inference import EmbeddingRequest, parse_request  # pydantic: on first use
        parse_request(EmbeddingRequest, body)
        return target, body
