"""Reference-based text metrics, written once for the SDK's evaluators and the local platform.

Pure functions, no I/O: exact match after :func:`normalize`, BLEU-4 (sacrebleu) and
ROUGE-1/2/L (rouge-score). Scores are fractions in [0, 1] (sacrebleu's 0–100 BLEU is divided
by 100), on the same axis as the platform's ``accuracy`` / ``bleu4`` / ``rouge_*`` report
fields. Text containing Chinese/Japanese/Korean characters is segmented with jieba; other text
goes through each library's own tokenizer, so English scores equal the library's.

jieba, sacrebleu and rouge-score (the ``eval`` and ``local`` extras) are imported on first use;
call :func:`preload` in a thread before scoring from several threads at once (sacrebleu's
first import from parallel threads can deadlock).
"""

from __future__ import annotations

import importlib
import logging
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rouge_score.rouge_scorer import RougeScorer
    from sacrebleu.metrics.bleu import BLEU
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

__all__ = [
    "CJK",
    "ROUGE_TYPES",
    "as_text",
    "bleu_pair",
    "cjk_tokens",
    "corpus_bleu4",
    "exact_match",
    "has_cjk",
    "normalize",
    "preload",
    "rouge",
    "sentence_bleu4",
    "summary_scores",
]

#: a Chinese, Japanese or Korean character (kana, CJK ideographs and extensions, hangul)
CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\U00020000-\U0002ffff]")
_SPACE = re.compile(r"\s+")
#: rouge-score's type → the report field
ROUGE_TYPES: dict[str, str] = {"rouge1": "rouge_1", "rouge2": "rouge_2", "rougeL": "rouge_l"}


def has_cjk(text: str) -> bool:
    """Whether ``text`` contains any Chinese/Japanese/Korean character."""
    return bool(CJK.search(text))


def _is_punct_or_symbol(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PS"


def as_text(value: Any) -> str:
    """A dataset cell as text: ``None`` → ``""``; Qianfan ``[["answer"]]`` → ``"answer"``."""
    while isinstance(value, list | tuple) and len(value) == 1:
        value = value[0]
    if value is None or (isinstance(value, float) and value != value):  # NaN from pandas
        return ""
    if isinstance(value, list | tuple):
        return "\n".join(as_text(v) for v in value)
    return str(value)


def normalize(text: Any) -> str:
    """For exact-match comparison: NFKC, case-fold, punctuation/symbols dropped, spaces squeezed."""
    s = unicodedata.normalize("NFKC", as_text(text)).casefold()
    s = "".join(" " if _is_punct_or_symbol(ch) else ch for ch in s)
    return _SPACE.sub(" ", s).strip()


def exact_match(reference: Any, output: Any, *, normalized: bool = True) -> float:
    """1.0 when the two match after :func:`normalize` (or stripped, with ``normalized=False``)."""
    ref, out = as_text(reference), as_text(output)
    same = normalize(ref) == normalize(out) if normalized else ref.strip() == out.strip()
    return 1.0 if same else 0.0


@lru_cache(maxsize=1)
def _jieba() -> ModuleType:
    jieba = importlib.import_module("jieba")  # deferred: its dictionary loads on first use
    jieba.setLogLevel(logging.WARNING)
    return jieba


def cjk_tokens(text: str) -> list[str]:
    """jieba words of ``text``, without whitespace and punctuation-only tokens."""
    words = _jieba().lcut(unicodedata.normalize("NFKC", text))
    return [w for w in (w.strip() for w in words) if w and not all(_is_punct_or_symbol(c) for c in w)]


def preload() -> None:
    """Import the metric libraries now (in the calling thread)."""
    import rouge_score.rouge_scorer  # noqa: F401
    import sacrebleu.metrics
    import sacrebleu.tokenizers.tokenizer_13a  # noqa: F401


# ---- BLEU-4 ----------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _tokenizer_13a() -> Tokenizer13a:
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()  # type: ignore[no-untyped-call]


def _bleu_tokens(text: str, cjk: bool) -> str:
    return " ".join(cjk_tokens(text)) if cjk else str(_tokenizer_13a()(text))


def bleu_pair(reference: Any, output: Any) -> tuple[str, str]:
    """Both sides tokenised the same way: jieba when either has CJK text, else sacrebleu's 13a."""
    ref, out = as_text(reference), as_text(output)
    cjk = has_cjk(ref) or has_cjk(out)
    return _bleu_tokens(ref, cjk), _bleu_tokens(out, cjk)


@lru_cache(maxsize=2)
def _bleu(effective_order: bool) -> BLEU:
    from sacrebleu.metrics.bleu import BLEU

    return BLEU(tokenize="none", effective_order=effective_order)


def sentence_bleu4(reference: Any, output: Any) -> float:
    """One row's BLEU-4 (sacrebleu's ``sentence_bleu`` defaults: exponential smoothing,
    effective order); 0.0 when either side is empty."""
    ref, out = bleu_pair(reference, output)
    if not ref or not out:
        return 0.0
    return float(_bleu(True).sentence_score(out, [ref]).score) / 100.0


def corpus_bleu4(references: Sequence[Any], outputs: Sequence[Any]) -> float:
    """Corpus BLEU-4 over all rows (what a report's ``bleu4`` is)."""
    pairs = [bleu_pair(r, o) for r, o in zip(references, outputs, strict=True)]
    if not pairs:
        return 0.0
    return float(_bleu(False).corpus_score([o for _, o in pairs], [[r for r, _ in pairs]]).score) / 100.0


# ---- ROUGE -----------------------------------------------------------------------------------

class _RougeTokenizer:
    """rouge-score tokenizer: jieba words (lower-cased) for CJK text, its default otherwise."""

    def __init__(self, use_stemmer: bool) -> None:
        from rouge_score.tokenizers import DefaultTokenizer

        self._default = DefaultTokenizer(use_stemmer=use_stemmer)

    def tokenize(self, text: str) -> list[str]:
        if has_cjk(text):
            return [t.lower() for t in cjk_tokens(text)]
        return list(self._default.tokenize(text))


@lru_cache(maxsize=2)
def _rouge_scorer(use_stemmer: bool) -> RougeScorer:
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer(list(ROUGE_TYPES), tokenizer=_RougeTokenizer(use_stemmer))


def rouge(reference: Any, output: Any, *, use_stemmer: bool = False) -> dict[str, float]:
    """ROUGE-1/2/L F-measures of one row: ``{"rouge_1": ..., "rouge_2": ..., "rouge_l": ...}``."""
    scores = _rouge_scorer(use_stemmer).score(as_text(reference), as_text(output))
    return {name: float(scores[key].fmeasure) for key, name in ROUGE_TYPES.items()}


# ---- a report's summary ----------------------------------------------------------------------

def summary_scores(references: Sequence[Any], outputs: Sequence[Any]) -> dict[str, float]:
    """A report's rule metrics over all rows: mean ``accuracy`` (exact match), corpus ``bleu4``,
    mean ``rouge_1``/``rouge_2``/``rouge_l`` — what the SDK's evaluators summarise to."""
    n = len(references)
    if len(outputs) != n:
        raise ValueError(f"{n} references but {len(outputs)} outputs")
    if not n:
        return {"accuracy": 0.0, "bleu4": 0.0, **dict.fromkeys(ROUGE_TYPES.values(), 0.0)}
    out = {"accuracy": sum(exact_match(r, o) for r, o in zip(references, outputs, strict=True)) / n,
           "bleu4": corpus_bleu4(references, outputs)}
    rows = [rouge(r, o) for r, o in zip(references, outputs, strict=True)]
    out.update({name: sum(row[name] for row in rows) / n for name in ROUGE_TYPES.values()})
    return out
