"""Reference-based text metrics as evaluators: exact match, BLEU-4 and ROUGE-1/2/L.

The scoring itself is :mod:`qfnb.protocol.textmetrics` (shared with the local platform, so a
local report and these evaluators give the same numbers); this module fits it to the
:class:`~.base.LocalEvaluator` interface (one row at a time, then a summary).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from qfnb.protocol import textmetrics as tm

from .base import EvalInput, LocalEvaluator


class ExactMatchEvaluator(LocalEvaluator):
    """``accuracy`` = 1.0 when output and reference match after
    :func:`~qfnb.protocol.textmetrics.normalize`; ``normalized=False`` compares the stripped
    strings exactly."""

    def __init__(self, *, normalized: bool = True, metric_name: str = "accuracy") -> None:
        self.normalized = normalized
        self.metric_name = metric_name

    def evaluate(self, input: EvalInput, reference: str, output: str) -> dict[str, Any]:
        return {self.metric_name: tm.exact_match(reference, output, normalized=self.normalized)}

    def __repr__(self) -> str:
        return f"ExactMatchEvaluator(normalized={self.normalized})"


class BleuEvaluator(LocalEvaluator):
    """Sentence BLEU-4 per row (``bleu4``); the summary is corpus BLEU-4 over all rows.

    sacrebleu with exponential smoothing and effective order per sentence (its
    ``sentence_bleu`` defaults); a row containing CJK text is jieba-segmented on both sides.
    """

    metric_name = "bleu4"

    def __init__(self) -> None:
        tm.preload()  # in the constructing thread, before rows are scored in parallel

    def evaluate(self, input: EvalInput, reference: str, output: str) -> dict[str, Any]:
        return {self.metric_name: tm.sentence_bleu4(reference, output)}

    def summarize(self, frame: pd.DataFrame) -> dict[str, Any] | None:
        if frame.empty:
            return None
        return {self.metric_name: tm.corpus_bleu4(list(frame["reference"]), list(frame["output"]))}

    def __repr__(self) -> str:
        return "BleuEvaluator()"


class RougeEvaluator(LocalEvaluator):
    """ROUGE-1/2/L F-measures per row (``rouge_1``, ``rouge_2``, ``rouge_l``); summary = mean."""

    def __init__(self, *, use_stemmer: bool = False) -> None:
        self.use_stemmer = use_stemmer

    def evaluate(self, input: EvalInput, reference: str, output: str) -> dict[str, Any]:
        return dict(tm.rouge(reference, output, use_stemmer=self.use_stemmer))

    def __repr__(self) -> str:
        return f"RougeEvaluator(use_stemmer={self.use_stemmer})"
