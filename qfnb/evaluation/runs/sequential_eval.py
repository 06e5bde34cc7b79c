"""An evaluation of two models that stops generating once their comparison is decided.

Items are drawn in a seeded random order (the guarantee needs items in random order; the same seed
gives the same order, so a re-run with an answer store replays the same answers and the same
decision without a call). They are evaluated a round at a time; after each round every item's
paired score on the deciding metric goes, in order, into a :class:`SequentialComparison`, and
generation stops at the first round in which it is decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._errors import invalid
from ..data import item_scores
from ..results.result import EvaluationResult
from ..stats._words import format_p, signed
from ..stats.sequential import SequentialComparison
from .answers import MappedProgress


@dataclass(frozen=True)
class SequentialRecord:
    """What a sequential run decided, and how to replay it: the item order and the stopping point."""

    metric: str
    model: str
    baseline: str
    order: list[int]
    total: int
    generated: int
    decided_at: int | None
    winner: str | None
    p_value: float
    ci_low: float
    ci_high: float
    alpha: float
    min_difference: float | None
    bounds: tuple[float, float]
    calls_saved: int
    #: items left out of the sequence because a side had no score (a failed answer)
    skipped: int = 0

    @property
    def sentence(self) -> str:
        ci = f"{1 - self.alpha:.0%} confidence sequence {signed(self.ci_low, 3)}\u2026{signed(self.ci_high, 3)}"
        p = f"always-valid p={format_p(self.p_value)}"
        if self.decided_at is None:
            return (f"{self.model} vs {self.baseline} on {self.metric}: not decided after all {self.generated} items "
                    f"({ci}, {p})")
        head = f"decided after {self.decided_at} of {self.total} items; {self.calls_saved} calls saved"
        if self.winner is None:
            what = (f"no difference of {self.min_difference:g} or more between {self.model} and {self.baseline} "
                    f"on {self.metric}")
        else:
            better, worse = (self.model, self.baseline) if self.winner == "a" else (self.baseline, self.model)
            what = f"{better} beats {worse} on {self.metric}"
        extra = f"; {self.generated} generated: the last round ran on" if self.generated > self.decided_at else ""
        if self.skipped:
            extra += f"; {self.skipped} item(s) without a score on both sides left out"
        return f"{head}: {what} ({ci}, {p}{extra})"


def eval_sequential(manager: Any, llms: Mapping[str, Any], frame: pd.DataFrame, *, model: str, baseline: str,
                    metric: str, bounds: tuple[float, float], alpha: float = 0.05,
                    min_difference: float | None = None, seed: int = 0, round_size: int = 8,
                    progress: Any = None, **eval_kwargs: Any) -> EvaluationResult:
    """Evaluate ``llms`` (exactly ``model`` and ``baseline``) on ``frame`` (``input``/``reference``) in
    a seeded random order, stopping after the round in which ``model`` vs ``baseline`` on ``metric``
    is decided. ``eval_kwargs`` go to ``manager.eval`` (store, repeats, sampling). The result's
    ``sequential`` holds the :class:`SequentialRecord`; its samples keep the dataset's item indices."""
    if set(llms) != {model, baseline}:
        raise invalid("llms", f"a sequential comparison runs exactly two models ({model!r} and {baseline!r}); "
                              f"got {sorted(llms)}")
    if isinstance(round_size, bool) or not isinstance(round_size, int) or round_size < 1:
        raise invalid("round_size", f"must be a positive integer, got {round_size!r}")
    seq = SequentialComparison(alpha=alpha, min_difference=min_difference, bounds=bounds)
    n = len(frame)
    order = [int(i) for i in np.random.default_rng(seed).permutation(n)]
    repeats = int(eval_kwargs.get("repeats", 1) or 1)
    per_item = len(llms) * repeats
    if progress is not None:
        progress.on_start(n * per_item)
    parts: list[EvaluationResult] = []
    generated = skipped = 0
    try:
        for start in range(0, n, round_size):
            chosen = order[start:start + round_size]
            sub = frame.iloc[chosen].reset_index(drop=True)
            # one round's generation results at the round's offset (its scoring results dropped)
            hook = (MappedProgress(progress.on_result, range(start * per_item, (start + len(chosen)) * per_item))
                    if progress is not None else False)
            part = manager.eval(dict(llms), sub, input_column="input", reference_column="reference",
                                progress=hook, **eval_kwargs)
            part.samples["index"] = [chosen[int(i)] for i in part.samples["index"]]
            parts.append(part)
            generated += len(chosen)
            if metric not in part.samples.columns:
                raise invalid("metric", f"the evaluation gives no per-item {metric!r} "
                                        f"(per-item metrics: {part.item_metrics})")
            sa, sb = item_scores(part.samples, model, metric), item_scores(part.samples, baseline, metric)
            both = [i for i in chosen if i in sa and i in sb]
            skipped += len(chosen) - len(both)
            if both:
                seq.add([float(np.mean(sa[i])) for i in both], [float(np.mean(sb[i])) for i in both])
            if seq.decided:
                break
    finally:
        if progress is not None:
            progress.on_close()
    result = EvaluationResult.concat(parts)
    ci = seq.ci
    result.sequential = SequentialRecord(
        metric=metric, model=model, baseline=baseline, order=order, total=n, generated=generated,
        decided_at=seq.decided_at, winner=seq.winner, p_value=seq.p_value, ci_low=ci.low, ci_high=ci.high,
        alpha=alpha, min_difference=min_difference, bounds=bounds, calls_saved=(n - generated) * per_item,
        skipped=skipped)
    return result
