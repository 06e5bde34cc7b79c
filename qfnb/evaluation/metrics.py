"""Reference-based text metrics: exact match, BLEU-4 (sacrebleu) and ROUGE-1/2/L (rouge-score).

Scores are fractions in [0, 1] (sacrebleu's 0–100 BLEU is divided by 100), so they sit on the
same axis as the platform's ``accuracy`` / ``bleu4`` / ``rouge_*`` report fields. Rows with
Chinese (or other CJK) text are segmented with jieba; other rows use the library's own
tokenizer, so English scores equal the library's.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

import pandas as pd

from .base import EvalInput, LocalEvaluator
from .text import as_text, cjk_tokens, has_cjk, join_tokens, normalize


class ExactMatchEvaluator(LocalEvaluator):
    """``accuracy`` = 1.0 when output and reference match after :func:`~.text.normalize`.

    ``normalized=False`` compares the stripped strings exactly.
    """

    def __init__(self, *, normalized: bool = True, metric_name: str = "accuracy") -> None:
        self.normalized = normalized
        self.metric_name = metric_name

    def evaluate(self, input: EvalInput, reference: str, output: str) -> dict[str, Any]:
        ref, out = as_text(reference), as_text(output)
        same = normalize(ref) == normalize(out) if self.normalized else ref.strip() == out.strip()
        return {self.metric_name: 1.0 if same else 0.0}

    def __repr__(self) -> str:
        return f"ExactMatchEvaluator(normalized={self.normalized})"


def _bleu_tokens(text: str, cjk: bool) -> str:
    if cjk:
        return join_tokens(cjk_tokens(text))
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return str(Tokenizer13a()(text))


class BleuEvaluator(LocalEvaluator):
    """Sentence BLEU-4 per row (``bleu4``); the summary is corpus BLEU-4 over all rows.

    sacrebleu with exponential smoothing and effective order per sentence (its
    ``sentence_bleu`` defaults); a row containing CJK text is jieba-segmented on both sides.
    """

    metric_name = "bleu4"

    def __init__(self) -> None:
        # Import sacrebleu in the constructing thread: its modules import each other, and first
        # imports from several scoring threads at once raise _DeadlockError.
        import sacrebleu.metrics
        import sacrebleu.tokenizers.tokenizer_13a  # noqa: F401

    @cached_property
    def _bleu(self) -> Any:
        from sacrebleu.metrics import BLEU

        return BLEU(tokenize="none", effective_order=True)

    @staticmethod
    def _pair(reference: str, output: str) -> tuple[str, str]:
        ref, out = as_text(reference), as_text(output)
        cjk = has_cjk(ref) or has_cjk(out)
        return _bleu_tokens(ref, cjk), _bleu_tokens(out, cjk)

    def evaluate(self, input: EvalInput, reference: str, output: str) -> dict[str, Any]:
        ref, out = self._pair(reference, output)
        if not out or not ref:
            return {self.metric_name: 0.0}
        return {self.metric_name: float(self._bleu.sentence_score(out, [ref]).score) / 100.0}

    def summarize(self, frame: pd.DataFrame) -> dict[str, Any] | None:
        if frame.empty:
            return None
        pairs = [self._pair(r, o) for r, o in zip(frame["reference"], frame["output"], strict=True)]
        from sacrebleu.metrics import BLEU

        corpus = BLEU(tokenize="none").corpus_score([o for _, o in pairs], [[r for r, _ in pairs]])
        return {self.metric_name: float(corpus.score) / 100.0}

    def __repr__(self) -> str:
        return "BleuEvaluator()"


class _RougeTokenizer:
    """rouge-score tokenizer: jieba for CJK text, rouge-score's default tokenizer otherwise."""

    def __init__(self, use_stemmer: bool) -> None:
        from rouge_score.tokenizers import DefaultTokenizer

        self._default = DefaultTokenizer(use_stemmer=use_stemmer)

    def tokenize(self, text: str) -> list[str]:
        if has_cjk(text):
            return [t.lower() for t in cjk_tokens(text)]
        return list(self._default.tokenize(text))


class RougeEvaluator(LocalEvaluator):
    """ROUGE-1/2/L F-measures per row (``rouge_1``, ``rouge_2``, ``rouge_l``); summary = mean."""

    _TYPES: ClassVar[dict[str, str]] = {"rouge1": "rouge_1", "rouge2": "rouge_2", "rougeL": "rouge_l"}

    def __init__(self, *, use_stemmer: bool = False) -> None:
        self.use_stemmer = use_stemmer

    @cached_property
    def _scorer(self) -> Any:
        from rouge_score.rouge_scorer import RougeScorer

        return RougeScorer(list(self._TYPES), tokenizer=_RougeTokenizer(self.use_stemmer))

    def evaluate(self, input: EvalInput, reference: str, output: str) -> dict[str, Any]:
        scores = self._scorer.score(as_text(reference), as_text(output))
        return {name: float(scores[key].fmeasure) for key, name in self._TYPES.items()}

    def __repr__(self) -> str:
        return f"RougeEvaluator(use_stemmer={self.use_stemmer})"
