"""Retrieval metrics over a ranked list of document ids and the relevant ones: hit@k, MRR@k, nDCG@k.

Binary relevance: a document is relevant or not. ``ranked`` is best first. These are the figures
``bench/retrieval.py`` prints and the ``%qfeval`` retrieval metric set (``--metrics retrieval``)
computes from a ``relevant`` column.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

__all__ = ["hit_at", "ndcg_at", "reciprocal_rank", "retrieval_scores"]


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
