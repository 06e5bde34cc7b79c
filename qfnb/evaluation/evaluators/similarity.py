"""Embedding cosine similarity between output and reference (``similarity``).

The embedder defaults to ``qfnb.Embedding()``: on the local platform that is the multilingual
USE-Multilingual-v3. Any ``Embedding``-like resource (``ado(texts=...)``) or callable
``texts -> vectors`` (sync or async) can be passed instead. The evaluator names the model that
answered (``embedder``, and ``similarity_embedder`` in the summary), and warns
(:class:`SimilarityLanguageWarning`) when texts are in a language that model does not cover.
"""

from __future__ import annotations

import asyncio
import math
import warnings
from collections.abc import Sequence
from typing import Any

from qfnb._core.runtime import sync
from qfnb._core.runtime.progress import ProgressArg
from qfnb.protocol.console.model_names import EMBEDDER_LANGUAGES
from qfnb.protocol.console.textmetrics import as_text
from qfnb.resources import Embedding

from .._errors import invalid
from ..base import EvalInput, LocalEvaluator, Sample, listener
from ..llm import acall
from ._languages import uncovered

Vector = Sequence[float]


class SimilarityLanguageWarning(UserWarning):
    """Texts scored by ``similarity`` are in a language its embedder was not trained on."""


def cosine(a: Vector, b: Vector) -> float:
    """Cosine similarity; 0.0 when either vector is all zeros."""
    if len(a) != len(b):
        raise ValueError(f"vectors differ in length: {len(a)} != {len(b)}")
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return 0.0 if na == 0 or nb == 0 else dot / (na * nb)


class EmbeddingSimilarityEvaluator(LocalEvaluator):
    """Cosine similarity of output and reference embeddings, in [-1, 1]; summary = mean.

    Empty outputs score 0.0; rows without a reference are left empty (NaN).
    """

    def __init__(self, embedder: Any = None, *, model: str | None = None, batch_size: int = 16,
                 concurrency: int = 2, metric_name: str = "similarity") -> None:
        if batch_size < 1:
            raise invalid("batch_size", "must be >= 1")
        self._embedder = embedder
        self.model = model
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.metric_name = metric_name
        #: the model that answered the embedding calls (their provenance); None before any call
        self.embedder: str | None = None
        self._warned = False

    def _get_embedder(self) -> Any:
        if self._embedder is None:
            self._embedder = Embedding(model=self.model) if self.model else Embedding()
        return self._embedder

    async def _embed_chunk(self, texts: list[str]) -> list[list[float]]:
        emb = self._get_embedder()
        ado = getattr(emb, "ado", None)
        if callable(ado):
            resp = await ado(texts=texts)
            provenance = getattr(resp, "provenance", None)
            if isinstance(provenance, dict) and provenance.get("model"):
                self.embedder = str(provenance["model"])
            return [list(item["embedding"]) for item in resp["data"]]
        if not callable(emb):
            raise TypeError(f"embedder must have ado(texts=...) or be callable, got {type(emb).__name__}")
        return [list(v) for v in await acall(emb, texts)]

    async def embed(self, texts: Sequence[str]) -> dict[str, list[float]]:
        """Embeddings of the distinct non-empty ``texts``, ``batch_size`` per request."""
        unique = list(dict.fromkeys(t for t in texts if t))
        chunks = [unique[i:i + self.batch_size] for i in range(0, len(unique), self.batch_size)]
        gate = asyncio.Semaphore(max(1, self.concurrency))

        async def one(chunk: list[str]) -> list[list[float]]:
            async with gate:
                vectors = await self._embed_chunk(chunk)
            if len(vectors) != len(chunk):
                raise ValueError(f"embedder returned {len(vectors)} vectors for {len(chunk)} texts")
            return vectors

        out: dict[str, list[float]] = {}
        for chunk, vectors in zip(chunks, await asyncio.gather(*(one(c) for c in chunks)), strict=True):
            out.update(zip(chunk, vectors, strict=True))
        self._check_languages(unique)
        return out

    def _check_languages(self, texts: Sequence[str]) -> None:
        """Warn (once per evaluator) when texts are in a language the answering embedder does not cover."""
        covered = EMBEDDER_LANGUAGES.get(self.embedder or "")
        if covered is None or self._warned:
            return
        missed = uncovered(texts, covered)
        if missed:
            self._warned = True
            found = ", ".join(f"{n} in {lang}" for lang, n in missed.most_common())
            others = [m for m, langs in EMBEDDER_LANGUAGES.items() if set(missed) <= set(langs)]
            hint = f"; pass model={others[0]!r} for them" if others else ""
            warnings.warn(f"{self.metric_name}: {self.embedder} covers {', '.join(covered)} only, and {found} "
                          f"of {len(texts)} texts are not: their scores are unreliable{hint}",
                          SimilarityLanguageWarning, stacklevel=2)

    def summarize(self, frame: Any) -> dict[str, Any] | None:
        """The mean, and the model that embedded (``<metric>_embedder``)."""
        out = super().summarize(frame)
        if out is not None and self.embedder:
            out[f"{self.metric_name}_embedder"] = self.embedder
        return out

    def _score(self, vectors: dict[str, list[float]], reference: str, output: str) -> dict[str, Any]:
        if not reference:
            return {self.metric_name: None}
        if not output:
            return {self.metric_name: 0.0}
        return {self.metric_name: cosine(vectors[output], vectors[reference])}

    async def aevaluate_many(self, samples: Sequence[Sample], progress: ProgressArg = None) -> list[dict[str, Any]]:
        """Each sample's similarity: one embedding call for all (``progress`` told of them together)."""
        pairs = [(as_text(s.reference), as_text(s.output)) for s in samples]
        vectors = await self.embed([t for pair in pairs for t in pair])
        scores = [self._score(vectors, r, o) for r, o in pairs]
        if (bar := listener(progress)) is not None:
            for i in range(len(scores)):
                bar.on_result(i, True)
        return scores

    async def aevaluate(self, input: EvalInput, reference: str, output: str) -> dict[str, Any]:
        ref, out = as_text(reference), as_text(output)
        return self._score(await self.embed([ref, out]), ref, out)

    def evaluate(self, input: EvalInput, reference: str, output: str) -> dict[str, Any]:
        return dict(sync.run(self.aevaluate(input, reference, output)))

    def __repr__(self) -> str:
        return f"EmbeddingSimilarityEvaluator(model={self.model!r}, embedder={self.embedder!r})"
