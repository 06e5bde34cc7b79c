"""``Reranker``: order documents by relevance to a query (``/v2/rerankers`` with a v2 API key,
else ``/reranker/{endpoint}``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from qfnb._core.errors import ValidationError

from ._generated.reranker import RerankerCalls
from .base import Target
from .params import RerankerCall
from .shapes import v2 as v2_shapes

__all__ = ["Reranker"]


class Reranker(RerankerCalls):
    """``Reranker().do("上海天气", ["上海气候", "北京美食"], top_n=1)["results"]`` — each result
    has ``document``, ``relevance_score`` and ``index`` (the document's position).

    ``batch_do``/``abatch_do`` take ``[(query, documents), ...]`` (the official
    ``query_document_pairs``).
    """

    api_types: ClassVar[tuple[str, ...]] = ("reranker",)
    batch_field: ClassVar[str] = "query_document_pairs"
    batch_keywords: ClassVar[tuple[str, ...] | None] = ("query_document_pairs",)

    def _body(self, target: Target, call: RerankerCall) -> tuple[Target, dict[str, Any]]:
        kwargs = self._given(call)
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
        if target.api_type == "v2":
            return target, v2_shapes.rerank_body({**kwargs, "documents": list(documents)}, target.model or "")
        body = self._wire_body({**kwargs, "documents": list(documents)}, False)
        return target, body

    def _batch_items(self, inputs: Iterable[Any] | None, body_list: Iterable[dict[str, Any]] | None,
                     common: dict[str, Any]) -> Iterable[dict[str, Any]]:
        if inputs is None:
            return super()._batch_items(None, body_list, common)
        pairs = list(inputs)
        for i, pair in enumerate(pairs):
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise ValidationError(f"query_document_pairs[{i}]", "must be a (query, documents) pair")
        return super()._batch_items(None, [{"query": q, "documents": d} for q, d in pairs], common)
