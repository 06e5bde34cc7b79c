"""``EvaluationResult``: metrics per model, per-sample table, HTML report and a comparison chart."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from .base import LocalEvaluator

log = logging.getLogger("qfnb.evaluation")

#: Columns of the long per-sample frame before the metric columns.
BASE_COLUMNS = ["llm", "index", "input", "reference", "output", "error"]
_PERCENT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*%\s*$")


def summarize_all(evaluators: Sequence[LocalEvaluator], columns: Sequence[Sequence[str]],
                  samples: pd.DataFrame, tags: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{tag: {metric: value}}`` from each evaluator's ``summarize`` over its own columns."""
    metrics: dict[str, dict[str, Any]] = {}
    for tag in tags:
        rows = samples[samples["llm"] == tag]
        out: dict[str, Any] = {}
        for evaluator, cols in zip(evaluators, columns, strict=True):
            frame = rows[["input", "reference", "output", *cols]].reset_index(drop=True)
            summary = evaluator.summarize(frame)
            if summary:
                out.update(summary)
        metrics[tag] = out
    return metrics


def _scalar(value: Any) -> Any:
    """A metric value for the table: numbers as float, ``"16.5%"`` as 0.165, others dropped."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        m = _PERCENT.match(value)
        if m:
            return float(m.group(1)) / 100.0
        try:
            return float(value)
        except ValueError:
            return None
    return None


class EvaluationResult:
    """The outcome of an evaluation.

    * ``metrics`` — ``{llm_tag: {metric: value}}`` (platform reports keep their raw fields).
    * ``metrics_df`` — one row per model, one column per numeric metric.
    * ``samples`` — long per-sample frame: ``llm, index, input, reference, output, error, <metrics>``.
    * ``samples_df`` — wide per-sample frame: ``input, reference`` then ``{tag}/output`` and
      ``{tag}/{metric}`` for every model.
    * ``result_dataset`` — ``samples`` as a qfnb ``Dataset``.
    """

    def __init__(self, metrics: Mapping[str, Mapping[str, Any]], samples: pd.DataFrame | None = None, *,
                 evaluators: Sequence[LocalEvaluator] = (), metric_columns: Sequence[Sequence[str]] = (),
                 task_id: str | None = None, state: str | None = None) -> None:
        self.metrics: dict[str, dict[str, Any]] = {k: dict(v) for k, v in metrics.items()}
        self.samples: pd.DataFrame = samples if samples is not None else pd.DataFrame(columns=BASE_COLUMNS)
        self.task_id = task_id
        self.state = state
        self._evaluators = list(evaluators)
        self._metric_columns = [list(c) for c in metric_columns]

    # -- tables ------------------------------------------------------------------------------
    @property
    def llm_tags(self) -> list[str]:
        return list(self.metrics)

    @property
    def metric_names(self) -> list[str]:
        """Metric columns of the per-sample table (in evaluator order)."""
        return [c for cols in self._metric_columns for c in cols]

    @property
    def metrics_df(self) -> pd.DataFrame:
        rows = {tag: {k: _scalar(v) for k, v in m.items()} for tag, m in self.metrics.items()}
        frame = pd.DataFrame.from_dict(rows, orient="index")
        frame = frame.dropna(axis=1, how="all").astype(float)
        frame.index.name = "llm"
        return frame

    @property
    def samples_df(self) -> pd.DataFrame:
        s = self.samples
        if s.empty:
            return pd.DataFrame(columns=["input", "reference"])
        base = s.drop_duplicates("index").set_index("index")[["input", "reference"]]
        parts = [base]
        for tag in dict.fromkeys(s["llm"]):
            rows = s[s["llm"] == tag].set_index("index")
            cols = ["output", *self.metric_names]
            if rows["error"].notna().any():
                cols.insert(1, "error")
            parts.append(rows[cols].rename(columns=lambda c, t=tag: f"{t}/{c}"))
        wide = pd.concat(parts, axis=1).sort_index()
        wide.index.name = "index"
        return wide

    @property
    def result_dataset(self) -> Any:
        """The per-sample rows as a qfnb ``Dataset`` (``None`` for a platform-only result)."""
        if self.samples.empty:
            return None
        from qfnb.dataset import Dataset

        return Dataset.create_from_pyobj(self.samples.to_dict("records"))

    def refresh(self) -> EvaluationResult:
        """Fold scores submitted to manual evaluators since the run into samples and metrics."""
        from .manual import ManualEvaluator

        changed = False
        for evaluator in self._evaluators:
            if not isinstance(evaluator, ManualEvaluator):
                continue
            for pos, (tag, index) in enumerate(zip(self.samples["llm"], self.samples["index"], strict=True)):
                scores = evaluator.score_of(tag, int(index))
                for dim, value in (scores or {}).items():
                    if value is not None:
                        self.samples.iat[pos, self.samples.columns.get_loc(dim)] = value
                        changed = True
        if changed:
            fresh = summarize_all(self._evaluators, self._metric_columns, self.samples, self.llm_tags)
            for tag, values in fresh.items():
                self.metrics[tag].update(values)
        return self

    # -- display -----------------------------------------------------------------------------
    def plot(self, metrics: Sequence[str] | None = None) -> Figure:
        """A matplotlib ``Figure``: one panel per metric, one bar per model (no pyplot state)."""
        from matplotlib.figure import Figure

        frame = self.metrics_df
        names = [m for m in (metrics or list(frame.columns)) if m in frame.columns]
        if not names:
            raise ValueError("no numeric metrics to plot")
        ncols = min(3, len(names))
        nrows = -(-len(names) // ncols)
        fig = Figure(figsize=(4.0 * ncols, 3.0 * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
        colors = [f"C{i % 10}" for i in range(len(frame.index))]
        for ax, name in zip(axes.flat, names, strict=False):
            values = frame[name]
            bars = ax.bar(range(len(values)), values.fillna(0.0).to_list(), color=colors)
            ax.bar_label(bars, labels=[f"{v:.3f}" if pd.notna(v) else "n/a" for v in values], fontsize=8)
            ax.set_title(name)
            ax.set_xticks(range(len(values)), [str(t) for t in frame.index], rotation=20, ha="right",
                          fontsize=8)
            ax.margins(y=0.15)
        for ax in list(axes.flat)[len(names):]:
            ax.set_visible(False)
        fig.suptitle("Evaluation: metrics per model")
        return fig

    def _styled_html(self, frame: pd.DataFrame, highlight: bool) -> str:
        try:
            styler = frame.style.format(precision=4, na_rep="—")
            if highlight and len(frame.index) > 1:
                styler = styler.highlight_max(axis=0, props="font-weight:bold;background-color:#d9f2d9")
            return str(styler.set_table_attributes('class="qfnb-eval"').to_html())
        except ImportError:  # pandas' Styler needs jinja2
            return str(frame.to_html(float_format=lambda v: f"{v:.4f}", na_rep="—"))

    def _repr_html_(self, max_rows: int = 20) -> str:
        parts = [f"<div class='qfnb-eval-report'><h4>Evaluation result — {len(self.metrics)} model(s)"]
        if not self.samples.empty:
            parts.append(f", {self.samples['index'].nunique()} sample(s)")
        if self.task_id:
            parts.append(f", platform task {html.escape(str(self.task_id))}")
        if self.state:
            parts.append(f" [{html.escape(str(self.state))}]")
        parts.append("</h4>")
        metrics = self.metrics_df
        parts.append(self._styled_html(metrics, True) if not metrics.empty else "<p>No metrics.</p>")
        if not self.samples.empty:
            samples = self.samples_df
            parts.append(f"<h5>Samples (first {min(max_rows, len(samples))} of {len(samples)})</h5>")
            parts.append(self._styled_html(samples.head(max_rows), False))
        parts.append("</div>")
        return "".join(parts)

    def __repr__(self) -> str:
        head = f"EvaluationResult({len(self.metrics)} model(s), {self.samples['index'].nunique()} sample(s)"
        if self.task_id:
            head += f", task={self.task_id}"
        if self.state:
            head += f", state={self.state}"
        frame = self.metrics_df
        body = frame.to_string(float_format=lambda v: f"{v:.4f}") if not frame.empty else "no metrics"
        return f"{head})\n{body}"
