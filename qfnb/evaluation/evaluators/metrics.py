"""Reference-based text metrics as evaluators: exact match, BLEU-4 and ROUGE-1/2/L.

The scoring itself is :mod:`qfnb.protocol.console.textmetrics` (shared with the local platform, so a
local report and these evaluators give the same numbers); this module fits it to the
:class:`~.base.LocalEvaluator` interface (one row at a time, then a summary).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from numbers import Real
from typing import Any

import pandas as pd

from qfnb.protocol.console import textmetrics as tm

from .._errors import invalid
from ..base import EvalInput, LocalEvaluator


class ExactMatchEvaluator(LocalEvaluator):
    """``accuracy`` = 1.0 when output and reference match after
    :func:`~qfnb.protocol.console.textmetrics.normalize`; ``normalized=False`` compares the stripped
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


class RougeEvaluator(LocalEvaluator):
    """ROUGE-1/2/L F-measures per row (``rouge_1``, ``rouge_2``, ``rouge_l``); summary = mean."""

    def __init__(self, *, use_stemmer: bool = False) -> None:
        self.use_stemmer = use_stemmer

    def evaluate(self, input: EvalInput, reference: str, output: str) -> dict[str, Any]:
        return dict(tm.rouge(reference, output, use_stemmer=self.use_stemmer))

    def __repr__(self) -> str:
        return f"RougeEvaluator(use_stemmer={self.use_stemmer})"


class FunctionEvaluator(LocalEvaluator):
    """Your own metric: ``fn(input, reference, output) -> float | list | dict``. A number (or a list of
    one) is the column ``name`` (default: the function's name); a list of several numbers gives the
    columns ``name_1``, ``name_2``, ...; a dict's values are columns under its keys. ``fn.bounds = (lo, hi)``,
    when set, is the score range a sequential comparison needs. A value that is not a finite number,
    or an exception, stops the run with an error naming the metric."""

    def __init__(self, fn: Callable[[EvalInput, str, str], Any], *, name: str | None = None) -> None:
        if not callable(fn):
            raise invalid("metrics", f"{fn!r} is not callable: a metric is fn(input, reference, output) -> "
                                     "float | dict")
        self.fn = fn
        self.metric_name = name or str(getattr(fn, "__name__", type(fn).__name__))
        self.bounds: tuple[float, float] | None = getattr(fn, "bounds", None)
        #: the columns it has given so far (a dict's keys are known once it has run)
        self.columns: dict[str, None] = {}
        self._lock = threading.Lock()

    def _number(self, key: str, value: Any) -> float:
        if isinstance(value, Real) and math.isfinite(float(value)):
            return float(value)
        raise ValueError(f"metric {self.metric_name!r}: {key!r} is {value!r}; return a finite number, a list of "
                         "them or a dict of them")

    def evaluate(self, input: EvalInput, reference: str, output: str) -> dict[str, Any]:
        try:
            value = self.fn(input, reference, output)
        except Exception as exc:
            raise ValueError(f"metric {self.metric_name!r} failed: {type(exc).__name__}: {exc}") from exc
        if hasattr(value, "tolist") and not isinstance(value, Real):  # a numpy array
            value = value.tolist()
        if isinstance(value, Mapping):
            out = {str(k): self._number(str(k), v) for k, v in value.items()}
        elif isinstance(value, list | tuple) and len(value) != 1:  # several scores: name_1, name_2, ...
            out = {f"{self.metric_name}_{i}": self._number(f"{self.metric_name}_{i}", v)
                   for i, v in enumerate(value, 1)}
            if not out:
                raise ValueError(f"metric {self.metric_name!r} returned an empty {type(value).__name__}; return a "
                                 "finite number, a list of them or a dict of them")
        else:
            one = value[0] if isinstance(value, list | tuple) else value
            out = {self.metric_name: self._number(self.metric_name, one)}
        with self._lock:
            self.columns.update(dict.fromkeys(out))
        return out

    def __repr__(self) -> str:
        return f"FunctionEvaluator({self.metric_name!r})"
