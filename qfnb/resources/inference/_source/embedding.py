"""``Embedding``'s call."""

from __future__ import annotations

from typing import Any

from qfnb._core.http.response import QfResponse

from ..base import BaseInference
from ..params import EmbeddingCall


class EmbeddingCalls(BaseInference[EmbeddingCall]):
    """``Embedding.ado`` / ``do``."""

    async def ado(self, texts: list[str], model: str | None = None, endpoint: str | None = None,
                  retry_count: int | None = None, request_timeout: float | None = None, request_id: str | None = None,
                  backoff_factor: float | None = None, *, user_id: str | None = None, **kwargs: Any) -> QfResponse:
        """Embed ``texts``: ``resp["data"][i]["embedding"]`` is the vector of ``texts[i]``.

        :param texts: the texts, at most 16 per call.
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
        return await self._acall_one(EmbeddingCall(
            texts=texts, model=model, endpoint=endpoint, retry_count=retry_count, request_timeout=request_timeout,
            request_id=request_id, backoff_factor=backoff_factor, user_id=user_id, extra=kwargs))
