"""``Reranker``: order documents by relevance to a query (``/reranker/{endpoint}``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from qfnb._core.errors import ValidationError
from qfnb._core.http.response import QfResponse
from qfnb._core.runtime import sync

from .base import BaseInference, Target, blocking_doc, call_params

__all__ = ["Reranker"]


class Reranker(BaseInference):
    """``Reranker().do("上海天气", ["上海气候", "北京美食"], top_n=1)["results"]`` — each result
    has ``document``, ``relevance_score`` and ``index`` (the document's position).

    ``batch_do``/``abatch_do`` take ``[(query, documents), ...]`` (the official
    ``query_document_pairs``).
    """

    api_types: ClassVar[tuple[str, ...]] = ("reranker",)
    batch_field: ClassVar[str] = "query_document_pairs"

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
        return await self._acall_one(call_params(locals()))

    def do(self, query: str, documents: Sequence[str], top_n: int | None = None, model: str | None = None,
           endpoint: str | None = None, retry_count: int | None = None, request_timeout: float | None = None,
           backoff_factor: float | None = None, *, request_id: str | None = None, **kwargs: Any) -> QfResponse:
        return sync.run(self.ado(**call_params(locals(), keep_none=True)))

    do.__doc__ = blocking_doc(ado.__doc__)

    def _body(self, target: Target, kwargs: dict[str, Any]) -> tuple[Target, dict[str, Any]]:
        if kwargs.get("stream"):
            raise ValidationError("stream", "reranking cannot be streamed")
        query, documents = kwargs.get("query"), kwargs.get("documents")
        if not isinstance(query, str) or not query.strip():
            raise ValidationError("query", "must be a non-empty string")
        if not isinstance(documents, list | tuple) or not documents:
            raise ValidationError("documents", "must be a non-empty list of strings")
        for i, doc in enumerate(documents):
            if not isinstance(doc, str):
                raise ValidationError(f"documents[{i}]", f"must be a string, got {type(doc).__name__}")
        top_n = kwargs.get("top_n")
        if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
            raise ValidationError("top_n", f"must be a positive integer, got {top_n!r}")
        body = self._wire_body({**kwargs, "documents": list(documents)}, False)
        body.pop("stream", None)
        return target, body

    def _named_inputs(self, inputs: Iterable[Any] | None, common: dict[str, Any]) -> Iterable[Any] | None:
        named = common.pop("query_document_pairs", None)
        if named is not None:
            if inputs is not None:
                raise ValidationError("query_document_pairs", "given both positionally and by name")
            return named  # type: ignore[no-any-return]
        return inputs

    def _batch_items(self, inputs: Iterable[Any] | None, body_list: Iterable[dict[str, Any]] | None,
                     common: dict[str, Any]) -> Iterable[dict[str, Any]]:
        if inputs is None:
            return super()._batch_items(None, body_list, common)
        pairs = list(inputs)
        for i, pair in enumerate(pairs):
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise ValidationError(f"query_document_pairs[{i}]", "must be a (query, documents) pair")
        return super()._batch_items(None, [{"query": q, "documents": d} for q, d in pairs], common)
