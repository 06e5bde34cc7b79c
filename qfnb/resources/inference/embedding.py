"""``Embedding``: texts → vectors (``texts=[...]``, at most 16 per call)."""

from __future__ import annotations

from typing import Any, ClassVar

from qfnb._core.errors import ValidationError
from qfnb._core.http.response import QfResponse
from qfnb._core.runtime import sync

from .base import BaseInference, Target, blocking_doc, call_params

__all__ = ["Embedding"]


class Embedding(BaseInference):
    """``Embedding().do(texts=["世界上最高的山"])["data"][0]["embedding"]``."""

    api_types: ClassVar[tuple[str, ...]] = ("embeddings",)
    batch_field: ClassVar[str] = "texts"

    async def ado(self, texts: list[str] | str, model: str | None = None, endpoint: str | None = None,
                  retry_count: int | None = None, request_timeout: float | None = None, request_id: str | None = None,
                  backoff_factor: float | None = None, *, user_id: str | None = None, **kwargs: Any) -> QfResponse:
        """Embed ``texts``: ``resp["data"][i]["embedding"]`` is the vector of ``texts[i]``.

        :param texts: the texts, at most 16 per call; one string is taken as a list of one (the
            official SDK sends a bare string as given, which the platform's list-of-texts field
            does not describe).
        :param model: a model name (built-in catalog or the platform's list); default: the
            instance's, then the config's default.
        :param endpoint: a custom service's endpoint suffix (wins over ``model``).
        :param retry_count: tries in all; ``None``: the config's ``llm_api_retry_count``.
        :param request_timeout: seconds per try; ``None``: the config's.
        :param request_id: sent as the request's id (the platform echoes it).
        :param backoff_factor: the retry backoff factor; ``None``: the config's.
        :param user_id: the end user's id, for the platform's abuse checks.
        :param kwargs: further body fields the platform accepts, sent as given.
        """
        return await self._acall_one(call_params(locals()))

    def do(self, texts: list[str] | str, model: str | None = None, endpoint: str | None = None,
           retry_count: int | None = None, request_timeout: float | None = None, request_id: str | None = None,
           backoff_factor: float | None = None, *, user_id: str | None = None, **kwargs: Any) -> QfResponse:
        return sync.run(self.ado(**call_params(locals(), keep_none=True)))

    do.__doc__ = blocking_doc(ado.__doc__)

    def _body(self, target: Target, kwargs: dict[str, Any]) -> tuple[Target, dict[str, Any]]:
        if kwargs.get("stream"):
            raise ValidationError("stream", "embeddings cannot be streamed")
        if "texts" not in kwargs:
            raise ValidationError("texts", "is required")
        texts = kwargs["texts"]
        rest = {k: v for k, v in kwargs.items() if k != "texts"}
        body = self._wire_body({**rest, "input": [texts] if isinstance(texts, str) else texts}, False)
        from qfnb.protocol.inference import EmbeddingRequest, parse_request  # pydantic: on first use
        parse_request(EmbeddingRequest, body)
        return target, body
