"""How an ``EvaluationResult`` shows: its metrics as a matplotlib figure (one panel per metric, one
bar per model) and the result as escaped HTML (the metrics table, the best of each column in bold,
and the first samples). Functions of the result's frames: this module imports no result class."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from qfnb.resources.safe_html import clean, escape

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


def metrics_figure(frame: pd.DataFrame, metrics: Sequence[str] | None = None) -> Figure:
    """One panel per metric column of ``frame`` (a result's ``metrics_df``), one bar per model."""
    import matplotlib as mpl  # deferred: loads matplotlib (`import qfnb.evaluation` does not)
    from matplotlib.figure import Figure

    with mpl.rc_context({"text.parse_math": False}):  # model and metric names: "$" is text
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


def styled_html(frame: pd.DataFrame, highlight: bool) -> str:
    """``frame`` as an HTML table, every cell and header escaped (4 decimals; ``highlight``: the
    best of each column in bold when there are several rows)."""
    try:
        # Styler writes cells, index and headers verbatim unless told: dataset and model text is escaped
        styler = frame.style.format(precision=4, na_rep="—", escape="html").format_index(escape="html", axis=0)
        styler = styler.format_index(escape="html", axis=1)
        if highlight and len(frame.index) > 1:
            styler = styler.highlight_max(axis=0, props="font-weight:bold;background-color:#d9f2d9")
        return str(styler.set_table_attributes('class="qfnb-eval"').to_html())
    except ImportError:  # pandas' Styler needs jinja2
        return str(frame.to_html(float_format=lambda v: f"{v:.4f}", na_rep="—"))


def result_html(metrics: pd.DataFrame, samples: pd.DataFrame | None, *, models: int, task_id: str | None,
                state: str | None, max_rows: int = 20) -> str:
    """A result's report: a heading (models, samples, the platform task and its state), the metrics
    table and the first ``max_rows`` rows of the wide ``samples`` table (None: a platform-only result)."""
    parts = [f"<div class='qfnb-eval-report'><h4>Evaluation result — {models} model(s)"]
    if samples is not None:
        parts.append(f", {len(samples)} sample(s)")
    if task_id:
        parts.append(f", platform task {escape(str(task_id))}")
    if state:
        parts.append(f" [{escape(str(state))}]")
    parts.append("</h4>")
    parts.append(styled_html(metrics, True) if not metrics.empty else "<p>No metrics.</p>")
    if samples is not None:
        parts.append(f"<h5>Samples (first {min(max_rows, len(samples))} of {len(samples)})</h5>")
        parts.append(styled_html(samples.head(max_rows), False))
    parts.append("</div>")
    return clean("".join(parts))
