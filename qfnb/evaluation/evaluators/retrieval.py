"""Retrieval metrics over a ranked list of document ids and the relevant ones: hit@k, MRR@k, nDCG@k.

Binary relevance: a document is relevant or not. ``ranked`` is best first. These are the figures
``bench/retrieval.py`` prints and the ``%qfeval`` retrieval metric set (``--metrics retrieval``)
computes from a ``relevant`` column.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Collection, Sequence
from typing import Any

from ..base import EvalInput, LocalEvaluator

__all__ = ["RetrievalEvaluator", "hit_at", "ndcg_at", "reciprocal_rank", "retrieval_scores"]


def _check(ranked: Sequence[str], relevant: Collection[str], k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if not relevant:
        raise ValueError("relevant is empty: a retrieval metric needs at least one relevant document")
    if isinstance(ranked, str):
        raise ValueError("ranked must be a sequence of document ids, not one string")


def hit_at(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """1.0 when a relevant document is among the first ``k``, else 0.0."""
    _check(ranked, relevant, k)
    return 1.0 if any(doc in relevant for doc in ranked[:k]) else 0.0


def reciprocal_rank(ranked: Sequence[str], relevant: Collection[str], k: int = 10) -> float:
    """1 / the rank of the first relevant document within the first ``k`` (0.0 when none is)."""
    _check(ranked, relevant, k)
    return next((1.0 / rank for rank, doc in enumerate(ranked[:k], 1) if doc in relevant), 0.0)


def ndcg_at(ranked: Sequence[str], relevant: Collection[str], k: int = 10) -> float:
    """Normalised discounted cumulative gain of the first ``k`` (binary gains)."""
    _check(ranked, relevant, k)
    dcg = sum(1.0 / math.log2(rank + 1) for rank, doc in enumerate(ranked[:k], 1) if doc in relevant)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(k, len(relevant)) + 1))
    return dcg / ideal


def retrieval_scores(ranked: Sequence[str], relevant: Collection[str], *, ks: Sequence[int] = (1, 3, 5),
                     depth: int = 10) -> dict[str, float]:
    """``hit@k`` for each of ``ks``, ``mrr@depth`` and ``ndcg@depth`` of one query."""
    scores = {f"hit@{k}": hit_at(ranked, relevant, k) for k in ks}
    scores[f"mrr@{depth}"] = reciprocal_rank(ranked, relevant, depth)
    scores[f"ndcg@{depth}"] = ndcg_at(ranked, relevant, depth)
    return scores


def _ids(value: Any, what: str) -> list[str]:
    """Document ids from a list, a JSON list, or text separated by commas, semicolons or new lines."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    if not isinstance(value, str | int):
        raise TypeError(f"{what} must be document ids (a list, a JSON list or comma-separated text), "
                        f"got {type(value).__name__}")
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            try:  # a Python list's repr (what a callable's list becomes as text)
                parsed = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise ValueError(f"{what} starts with '[' but is not a list: {text[:60]!r}") from None
        return _ids(list(parsed), what)
    return [part.strip() for part in re.split(r"[,;\n]", text) if part.strip()]


class RetrievalEvaluator(LocalEvaluator):
    """``--metrics retrieval``: hit@1/3/5, MRR@10 and nDCG@10 of a retrieval pipeline's ranked ids
    (its output) against the relevant ids (the reference: a ``relevant`` column); summary = means.

    A row without relevant ids is left empty (NaN); an empty ranking scores 0.
    """

    metric_names = ("hit@1", "hit@3", "hit@5", "mrr@10", "ndcg@10")

    def evaluate(self, input: EvalInput, reference: Any, output: Any) -> dict[str, Any]:
        relevant = set(_ids(reference, "the relevant ids (reference)"))
        if not relevant:
            return dict.fromkeys(self.metric_names)
        return retrieval_scores(_ids(output, "the ranking (output)"), relevant)
