"""How a :class:`~.compare.Comparison` looks: a forest plot and an HTML report.

The view takes any object with a comparison's read-only face (:class:`ComparisonView`), so it
never imports the module it draws for.

The figure is transparent with mid-grey ink, so one PNG reads on light and dark pages; the
HTML sets no colours unless the caller passes ``styles`` (the notebook layer passes its
theme's), so it inherits the page's text colour.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from qfnb.resources.safe_html import escape

from ..stats._words import BETTER, WORSE, format_p
from ..stats.paired import Interval

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


class MetricRowView(Protocol):
    """One (model, metric) row as the view reads it."""

    @property
    def kind(self) -> str: ...
    @property
    def diff(self) -> float: ...
    @property
    def ci(self) -> Interval | None: ...
    @property
    def verdict(self) -> str: ...


class ComparisonView(Protocol):
    """What the view reads of a comparison (:class:`~.compare.Comparison` has it)."""

    @property
    def baseline(self) -> str: ...
    @property
    def models(self) -> list[str]: ...
    @property
    def metrics(self) -> list[str]: ...
    @property
    def settings(self) -> dict[str, Any]: ...
    @property
    def notes(self) -> list[str]: ...
    @property
    def sentences(self) -> list[str]: ...
    @property
    def method_note(self) -> str: ...
    def row(self, model: str, metric: str) -> MetricRowView: ...
    def flipped(self, model: str | None = None, metric: str | None = None,
                limit: int | None = None) -> pd.DataFrame: ...
    def to_dataframe(self) -> pd.DataFrame: ...
    def plot(self) -> Figure: ...

#: Readable on white (4.6:1) and on a dark page (#111: 4.3:1), as the notebook charts.
INK = "#7a7a7a"
COLORS = {BETTER: "#3aa655", WORSE: "#e8833a"}
NEUTRAL = "#3b8fd9"


def forest_figure(comparison: ComparisonView, ink: str = INK) -> Figure:
    """One panel per metric; per compared model a point (the mean difference) with its CI as
    error bars, a line at 0 (no difference); green = better, orange = worse, blue = not shown
    to differ."""
    import matplotlib as mpl  # deferred: loads matplotlib (`import qfnb.evaluation` does not)
    from matplotlib.figure import Figure

    metrics, models = comparison.metrics, comparison.models
    height = sum(0.55 + 0.42 * len(models) for _ in metrics) + 0.4
    with mpl.rc_context({"text.parse_math": False}):  # model and metric names: "$" is text, not mathtext
        return _forest(comparison, ink, Figure(figsize=(6.4, height), layout="constrained"))


def _row(comparison: ComparisonView, model: str, metric: str) -> Any:
    """``model``'s row on ``metric``; None where it has none (its answers read no degeneration, so no
    "degeneration first" row)."""
    try:
        return comparison.row(model, metric)
    except KeyError:
        return None


def _forest(comparison: ComparisonView, ink: str, fig: Figure) -> Figure:
    metrics, models = comparison.metrics, comparison.models
    fig.patch.set_alpha(0.0)
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    for ax, metric in zip(axes, metrics, strict=True):
        ax.set_facecolor("none")
        ys = list(range(len(models)))[::-1]
        for y, model in zip(ys, models, strict=True):
            row = _row(comparison, model, metric)
            if row is None:  # a "degeneration first" row is only where a model's answers degenerated
                continue
            color = COLORS.get(row.verdict, NEUTRAL)
            if row.ci is not None and math.isfinite(row.diff):
                err = [[max(0.0, row.diff - row.ci.low)], [max(0.0, row.ci.high - row.diff)]]
                ax.errorbar([row.diff], [y], xerr=err, fmt="o", color=color, ecolor=color, capsize=4,
                            markersize=6, linewidth=1.8)
                ax.annotate(f"{row.diff:+.3f}  [{row.ci.low:+.3f}, {row.ci.high:+.3f}]", (row.diff, y),
                            textcoords="offset points", xytext=(0, 7), ha="center", fontsize=7.5, color=ink)
        ax.axvline(0.0, color=ink, linewidth=1.0, linestyle="--")
        ax.set_yticks(ys, [f"{m} \u2212 {comparison.baseline}" for m in models], fontsize=8, color=ink)
        ax.set_ylim(-0.7, len(models) - 0.3)
        ax.set_title(metric, fontsize=9, color=ink, loc="left")
        ax.tick_params(colors=ink, labelsize=8)
        for spine in ax.spines.values():
            spine.set_color(ink)
        ax.spines["top"].set_visible(False)
        ax.spines["right"].set_visible(False)
        ax.grid(axis="x", alpha=0.25, color=ink)
        lo, hi = ax.get_xlim()
        pad = 0.08 * (hi - lo or 1.0)
        ax.set_xlim(min(lo, -pad) - pad, max(hi, pad) + pad)
    fig.suptitle("green: better \u00b7 orange: worse \u00b7 blue: no difference shown", fontsize=7.5, color=ink,
                 x=0.99, ha="right")
    level = comparison.settings.get("confidence", 0.95)
    axes[-1].set_xlabel(f"difference vs {comparison.baseline} ({level:.0%} CI)", fontsize=8, color=ink)
    return fig


def figure_png(fig: Figure) -> bytes:
    """PNG bytes of a figure, transparent (the object API: thread-safe, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, transparent=True)
    return buf.getvalue()


def _cell(value: Any, style: str) -> str:
    if isinstance(value, float):
        text = "\u2014" if not math.isfinite(value) else f"{value:.4f}"
    else:
        text = escape("" if value is None else str(value))
    return f'<td style="{style}">{text}</td>'


def _wrap(text: str) -> str:
    """How a text cell wraps: a short one never (a p-value or "McNemar exact" split into a column of
    single letters is unreadable), a long one between words within 40ch, and only a word too long
    for that (a URL) anywhere: ``overflow-wrap:anywhere`` lets the table squeeze every column."""
    if len(text) <= 16:
        return ";white-space:nowrap"
    anywhere = ";overflow-wrap:anywhere" if any(len(w) > 40 for w in text.split()) else ""
    return f";white-space:pre-wrap;max-width:40ch{anywhere}"


def _table(frame: pd.DataFrame, styles: Mapping[str, str], cls: str) -> str:
    th = styles.get("cell", "text-align:left;padding:2px 8px")
    head = "".join(f'<th style="{th}">{escape(str(c))}</th>' for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for v in row:
            num = isinstance(v, int | float) and not isinstance(v, bool)
            style = styles.get("num", "text-align:right;padding:2px 8px") if num else th
            if not num:
                style += _wrap(str(v))
            cells.append(_cell(v, style))
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table class="{cls}" style="border-collapse:collapse"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def summary_frame(comparison: ComparisonView) -> pd.DataFrame:
    """The table the report shows: readable column names, p-values as text."""
    frame = comparison.to_dataframe()
    if frame.empty:
        return frame
    frame["p"] = [format_p(p) for p in frame["p_adjusted"]]
    frame["W/T/L"] = [f"{w}/{t}/{lo}" for w, t, lo in zip(frame["wins"], frame["ties"], frame["losses"],
                                                         strict=True)]
    # what decides first (a narrow output area cuts the right-hand columns): verdict, difference, CI, p
    cols = ["model", "metric", "verdict", "diff", "ci_low", "ci_high", "p", "W/T/L", "n", "model_mean",
            "baseline_mean", "test", "kind"]
    return frame[cols].rename(columns={"model_mean": "model", "baseline_mean": comparison.baseline,
                                       "model": "vs " + comparison.baseline})


def comparison_html(comparison: ComparisonView, styles: Mapping[str, str], max_flips: int = 5) -> str:
    """The report: sentences, the table, the forest plot and the changed items side by side."""
    muted = styles.get("muted", "opacity:0.75")
    parts = [f'<div class="qfnb-compare"><h4>Comparison with {escape(comparison.baseline)}</h4><ul>']
    parts += [f"<li>{escape(s)}</li>" for s in comparison.sentences]
    parts.append(f'</ul><p style="{muted};font-size:0.85em">{escape(comparison.method_note)}</p>')
    parts += [f'<p style="{muted};font-size:0.85em">{escape(n)}</p>' for n in comparison.notes]
    parts.append(_table(summary_frame(comparison), styles, "qfnb-compare-table"))
    png = base64.b64encode(figure_png(comparison.plot())).decode()
    parts.append(f'<img class="qfnb-forest" alt="differences with confidence intervals" '
                 f'src="data:image/png;base64,{png}"/>')
    for model in comparison.models:
        for metric in comparison.metrics:
            row = _row(comparison, model, metric)
            if row is None:
                continue
            flips = comparison.flipped(model, metric)
            if flips.empty:
                continue
            what = "flipped" if row.kind == "pass/fail" else "changed"
            n = min(max_flips, len(flips))
            parts.append(f"<details><summary>{escape(model)} vs {escape(comparison.baseline)} on "
                         f"{escape(metric)}: {len(flips)} item(s) {what} (largest first, {n} shown)</summary>")
            parts.append(_table(flips.head(max_flips), styles, "qfnb-flips") + "</details>")
    parts.append("</div>")
    return "".join(parts)
