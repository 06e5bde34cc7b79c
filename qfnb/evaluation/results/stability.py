"""Stability over repeats: would a second run agree?

From a result whose items were each answered several times (``repeats=N``):

* per model and metric, the mean with a CI that carries both the item-to-item and the
  run-to-run variance (items, then each item's repeats, resampled), the spread of the whole-run
  score across repeats (what one more run could give), and the mean within-item spread;
* per item, the answer agreement (the share of repeats giving the most common answer, after
  exact-match normalisation) and each metric's spread across repeats;
* the items answered inconsistently: a pass/fail metric that changes across repeats, or a
  score whose range across repeats exceeds ``tolerance``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from qfnb.protocol.console.textmetrics import normalize
from qfnb.resources.safe_html import clean, escape

from .._errors import invalid
from ..stats import paired as st


@dataclass
class Stability:
    """Repeat stability of each model: ``summary`` (model x metric), ``items`` (model x item)."""

    summary: pd.DataFrame
    items: pd.DataFrame
    repeats: int
    tolerance: float
    samples: pd.DataFrame

    def to_dataframe(self) -> pd.DataFrame:
        return self.summary

    def inconsistent(self, model: str | None = None, metric: str | None = None) -> pd.DataFrame:
        """Items whose ``metric`` changes across repeats (all metrics when ``None``), with every
        repeat's answer (``answer_1`` ... ``answer_N``), least stable first."""
        items = self.items if model is None else self.items[self.items["model"] == model]
        metrics = [metric] if metric else [c[: -len("/spread")] for c in items.columns if c.endswith("/spread")]
        flags = [items[f"{m}/inconsistent"] for m in metrics if f"{m}/inconsistent" in items.columns]
        if not flags:
            raise KeyError(f"no metric {metric!r} (metrics: {metrics})")
        mask = np.logical_or.reduce([f.to_numpy(bool) for f in flags])
        out = items[mask].sort_values(["model", "agreement"], kind="stable").copy()
        for r in range(self.repeats):
            out[f"answer_{r + 1}"] = [self._answer(m, i, r) for m, i in zip(out["model"], out["index"], strict=True)]
        return out.reset_index(drop=True)

    def _answer(self, model: str, index: int, repeat: int) -> object:
        s = self.samples
        hit = s[(s["llm"] == model) & (s["index"] == index) & (s["repeat"] == repeat)]
        return hit["output"].iloc[0] if len(hit) else None

    @property
    def sentences(self) -> list[str]:
        return [f"{row.model} on {row.metric}: {row.mean:.3f} (95% CI {row.ci_low:.3f}\u2026{row.ci_high:.3f} "
                f"with the repeat variance); one run scored {row.run_min:.3f}\u2026{row.run_max:.3f} over "
                f"{self.repeats} repeats; {row.inconsistent_items} of {row.items} items inconsistent"
                for row in self.summary.itertuples(index=False)]

    def _repr_html_(self) -> str:
        items = "".join(f"<li>{escape(s)}</li>" for s in self.sentences)
        table = self.summary.to_html(index=False, float_format=lambda v: f"{v:.4f}")
        return clean(f"<div class='qfnb-stability'><h4>Stability over {self.repeats} repeats</h4><ul>{items}</ul>"
                     f"{table}</div>")

    def __repr__(self) -> str:
        return "\n".join([f"Stability over {self.repeats} repeats", *self.sentences])


def _agreement(outputs: Sequence[Any]) -> float:
    texts = [normalize(o) for o in outputs]
    return Counter(texts).most_common(1)[0][1] / len(texts) if texts else float("nan")


def stability(samples: pd.DataFrame, metrics: Sequence[str], *, tolerance: float = 0.1, confidence: float = 0.95,
              n_resamples: int = 10_000, seed: int = 0) -> Stability:
    """The stability report of a long ``samples`` frame with a ``repeat`` column."""
    if "repeat" not in samples.columns:
        raise invalid("repeats", "this result has one answer per item; evaluate with repeats=N (N >= 2)")
    if not metrics:
        raise invalid("metrics", "no per-item numeric metric")
    if not tolerance >= 0:
        raise invalid("tolerance", f"must be >= 0, got {tolerance}")
    ok = samples[~samples["error"].map(lambda e: isinstance(e, str) and bool(e))]
    repeats = int(samples["repeat"].max()) + 1
    summary: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for model in dict.fromkeys(samples["llm"]):
        rows = ok[ok["llm"] == model]
        groups = dict(tuple(rows.groupby("index", sort=True)))
        per_item: dict[int, dict[str, Any]] = {
            int(i): {"model": model, "index": int(i), "input": g["input"].iloc[0], "repeats": len(g),
                     "agreement": _agreement(list(g["output"]))} for i, g in groups.items()}
        for m in metrics:
            values = {int(i): pd.to_numeric(g[m], errors="coerce").dropna().to_numpy(float) for i, g in groups.items()}
            values = {i: v for i, v in values.items() if v.size}
            if len(values) < 2:
                continue
            binary = st.is_binary(pd.to_numeric(samples[m], errors="coerce").dropna())
            for i, v in values.items():
                spread = float(v.max() - v.min())
                per_item[i][f"{m}/mean"] = float(v.mean())
                per_item[i][f"{m}/spread"] = spread
                per_item[i][f"{m}/inconsistent"] = spread > 0 if binary else spread > tolerance
            reps = [values[i] for i in sorted(values)]
            ci = st.two_level_ci(reps, [[0.0]] * len(reps), confidence=confidence, n_resamples=n_resamples,
                                 seed=seed)
            runs = pd.to_numeric(rows[m], errors="coerce").groupby(rows["repeat"]).mean()
            summary.append({
                "model": model, "metric": m, "items": len(values), "mean": float(np.mean([v.mean() for v in reps])),
                "ci_low": ci.low, "ci_high": ci.high, "run_min": float(runs.min()), "run_max": float(runs.max()),
                "run_sd": float(runs.std(ddof=1)) if len(runs) > 1 else 0.0,
                "item_sd": float(np.mean([v.std(ddof=1) if v.size > 1 else 0.0 for v in reps])),
                "inconsistent_items": int(sum(per_item[i][f"{m}/inconsistent"] for i in values)),
                "agreement": float(np.mean([per_item[i]["agreement"] for i in values]))})
        items += per_item.values()
    return Stability(pd.DataFrame(summary), pd.DataFrame(items), repeats, tolerance, samples)
