"""``Reranker``'s call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qfnb._core.http.response import QfResponse

from ..base import BaseInference
from ..params import RerankerCall


class RerankerCalls(BaseInference[RerankerCall]):
    """``Reranker.ado`` / ``do``."""

    async def ado(self, query: str, documents: Sequence[str], top_n: int | None = None, model: str | None = None,
                  endpoint: str | None = None, retry_count: int | None = None, request_timeout: float | None = None,
                  backoff_factor: float | None = None, *, request_id: str | None = None, **kwargs: Any) -> QfResponse:
        """Order ``documents`` by relevance to ``query``.

        :param query: what the documents should answer.
        :param documents: the texts to order.
        :param top_n: return only the ``top_n`` best; default: all.
        :param model: a model name (built-in catalog or the platform's list); default: the
            instance's, then the config's default.
        :param endpoint: a custom service's endpoint suffix (wins over ``model``).
        :param retry_count: tries in all; ``None``: the config's ``llm_api_retry_count``.
        :param request_timeout: seconds per try; ``None``: the config's.
        :param backoff_factor: the retry backoff factor; ``None``: the config's.
        :param request_id: sent as the request's id (the platform echoes it).
        :param kwargs: further body fields the platform accepts, sent as given.
        """
        return await self._acall_one(RerankerCall(
            query=query, documents=documents, top_n=top_n, model=model, endpoint=endpoint, retry_count=retry_count,
            request_timeout=request_timeout, backoff_factor=backoff_factor, request_id=request_id, extra=kwargs))
