"""The metric words of ``%qfeval --metrics``: each word's evaluator family and result columns, the
names the report shows them under, their score ranges, and the evaluators they build (a notebook
function named in ``--metrics`` included)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from qfnb.evaluation import (
    BleuEvaluator,
    EmbeddingSimilarityEvaluator,
    ExactMatchEvaluator,
    LocalJudgeEvaluator,
    RetrievalEvaluator,
    RougeEvaluator,
)
from qfnb.evaluation.evaluators.metrics import FunctionEvaluator
from qfnb.notebook.evaluation.options import EvalArgsError

#: metric word -> (evaluator family, the result columns it shows). Aliases share a family. The
#: report shows a one-column metric under the word asked for (``bleu``, not ``bleu4``).
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "exact_match": ("exact_match", ("exact_match",)),
    "accuracy": ("exact_match", ("accuracy",)),
    "bleu": ("bleu", ("bleu4",)),
    "bleu4": ("bleu", ("bleu4",)),
    "rouge": ("rouge", ("rouge_1", "rouge_2", "rouge_l")),
    "rouge_1": ("rouge", ("rouge_1",)),
    "rouge_2": ("rouge", ("rouge_2",)),
    "rouge_l": ("rouge", ("rouge_l",)),
    "similarity": ("similarity", ("similarity",)),
    "judge": ("judge", ("judge_score",)),
    # a retrieval pipeline's ranked ids (its output) against a ``relevant`` column
    "retrieval": ("retrieval", ("hit@1", "hit@3", "hit@5", "mrr@10", "ndcg@10")),
    "hit@1": ("retrieval", ("hit@1",)),
    "hit@3": ("retrieval", ("hit@3",)),
    "hit@5": ("retrieval", ("hit@5",)),
    "mrr": ("retrieval", ("mrr@10",)),
    "ndcg": ("retrieval", ("ndcg@10",)),
}

DEFAULT_METRICS = ("exact_match", "bleu", "rouge_l")

#: the lowest and highest score of each per-item metric column (``--sequential`` needs them; a judge's
#: come from its rubric)
BOUNDS: dict[str, tuple[float, float]] = {
    "exact_match": (0.0, 1.0), "accuracy": (0.0, 1.0), "bleu4": (0.0, 1.0), "rouge_1": (0.0, 1.0),
    "rouge_2": (0.0, 1.0), "rouge_l": (0.0, 1.0), "similarity": (-1.0, 1.0)}

#: The judge's reply is one score line and one reason line; this caps a rambling judge.
JUDGE_MAX_TOKENS = 64


def columns_for(metrics: Sequence[str], custom: Mapping[str, Sequence[str]] | None = None) -> dict[str, str]:
    """Result column -> the name shown, for the metric words asked (``bleu`` shows ``bleu4`` as ``bleu``);
    a notebook function's columns (``custom``, else the word itself) show under their own names."""
    shown: dict[str, str] = {}
    for m in metrics:
        if m not in METRICS:
            for c in (custom or {}).get(m) or (m,):
                shown.setdefault(c, c)
            continue
        cols = METRICS[m][1]
        for c in cols:
            shown.setdefault(c, m if len(cols) == 1 and m != "judge" else c)
    return shown


def report_frame(columns: Mapping[str, str], metrics_df: pd.DataFrame) -> pd.DataFrame:
    """The asked-for metric columns of a result's ``metrics_df``, renamed to the asked names."""
    keep = [c for c in columns if c in metrics_df.columns]
    return metrics_df[keep].rename(columns=dict(columns))


def report_samples(columns: Mapping[str, str], samples_df: pd.DataFrame) -> pd.DataFrame:
    """Per-sample columns ``tag/metric`` likewise: asked ones renamed, the family's others dropped."""
    every = {c for _, cols in METRICS.values() for c in cols}
    rename, drop = {}, []
    for col in samples_df.columns:
        tag, _, name = str(col).rpartition("/")
        if name in columns:
            rename[col] = f"{tag}/{columns[name]}" if tag else columns[name]
        elif name in every:
            drop.append(col)
    return samples_df.drop(columns=drop).rename(columns=rename)


def metric_bounds(column: str, evaluators: Sequence[Any]) -> tuple[float, float]:
    """The score range of a result column: fixed for the text metrics, the rubric's for a judge."""
    if column in BOUNDS:
        return BOUNDS[column]
    for ev in evaluators:
        if isinstance(ev, LocalJudgeEvaluator) and ev.metric_name == column:
            return float(ev.rubric.min_score), float(ev.rubric.max_score)
        if isinstance(ev, FunctionEvaluator) and ev.metric_name == column and ev.bounds is not None:
            return float(ev.bounds[0]), float(ev.bounds[1])
    raise EvalArgsError(f"--sequential: no known score range for {column!r} (a notebook function gives its own: "
                        "fn.bounds = (lowest, highest))")


def custom_metrics(words: Sequence[str], namespace: Mapping[str, Any]) -> dict[str, FunctionEvaluator]:
    """``--metrics`` words that name no built-in metric but a notebook function ``(input, reference, output)``."""
    out: dict[str, FunctionEvaluator] = {}
    for word in words:
        if word.lower() in METRICS or not word.isidentifier() or word not in namespace:
            continue
        fn = namespace[word]
        if not callable(fn):
            raise EvalArgsError(f"--metrics: {word!r} is a {type(fn).__name__}, not a function "
                                "(input, reference, output) -> float | dict")
        out[word] = FunctionEvaluator(fn, name=word)
    return out


def check_metrics(words: Sequence[str], judge: bool, custom: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """Known metric words (built-in names lower-cased; ``custom``: notebook functions by name), deduplicated;
    ``judge`` is added when a judge model is given."""
    metrics = [w if w in (custom or {}) else w.lower() for w in words] or list(DEFAULT_METRICS)
    unknown = [w for w in metrics if w not in METRICS and w not in (custom or {})]
    if unknown:
        raise EvalArgsError(f"--metrics: unknown metric(s) {unknown}; choose from {sorted(METRICS)} or name a "
                            "notebook function (input, reference, output) -> float | dict "
                            "(add an LLM judge with --judge MODEL)")
    if "judge" in metrics and not judge:
        raise EvalArgsError("--metrics judge needs a judge model: add --judge MODEL")
    if judge and "judge" not in metrics:
        metrics.append("judge")
    return tuple(dict.fromkeys(metrics))


def make_evaluators(metrics: Sequence[str], judge: Any | None, custom: Mapping[str, Any] | None = None) -> list[Any]:
    """The evaluators of the metric words, in the order asked (a notebook function's from ``custom``
    in its place): a result's first metric is the first one asked, what ``--plan`` plans on."""
    # the result's own column is the word asked for (exact_match, or the SDK's accuracy), so a stored
    # result's samples_df and a later --compare say what the notebook asked for
    match_name = next((m for m in metrics if m in METRICS and METRICS[m][0] == "exact_match"), "exact_match")
    factories: dict[str, Callable[[], Any]] = {
        "exact_match": lambda: ExactMatchEvaluator(metric_name=match_name),
        "bleu": BleuEvaluator,
        "rouge": RougeEvaluator,
        "similarity": EmbeddingSimilarityEvaluator,
        "retrieval": RetrievalEvaluator,
        "judge": lambda: LocalJudgeEvaluator(judge, judge_kwargs={"max_output_tokens": JUDGE_MAX_TOKENS}),
    }
    made: dict[str, Any] = {}
    for m in metrics:
        key = METRICS[m][0] if m in METRICS else m
        if key not in made and (m in METRICS or m in (custom or {})):
            made[key] = factories[key]() if m in METRICS else (custom or {})[m]
    return list(made.values())
