"""matplotlib charts rendered to PNG bytes with the object API (thread-safe; never pyplot)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    return buf.getvalue()


def loss_chart(points: Sequence[tuple[int, float]], *, title: str = "training loss") -> bytes:
    fig = Figure(figsize=(5.5, 2.6))
    ax = fig.add_subplot()
    if points:
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, color="#1f77b4", linewidth=1.6, marker="o" if len(xs) < 40 else None, markersize=3)
        ax.set_xlim(left=min(xs))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    else:
        ax.text(
            0.5,
            0.5,
            "waiting for the first logged step…",
            ha="center",
            va="center",
            transform=ax.transAxes,
            color="#888",
        )
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return _png(fig)


def metric_bars(table: Mapping[str, Mapping[str, float]], *, title: str = "evaluation") -> bytes:
    """Grouped bars: ``{metric: {run_name: value}}`` -> one group per metric, one bar per run."""
    metrics = list(table)
    runs = sorted({r for m in table.values() for r in m}, key=str)
    fig = Figure(figsize=(max(4.0, 1.3 * len(metrics) + 2), 2.8))
    ax = fig.add_subplot()
    width = 0.8 / max(len(runs), 1)
    for i, run in enumerate(runs):
        xs = [j + i * width for j in range(len(metrics))]
        ys = [float(table[m].get(run, float("nan"))) for m in metrics]
        bars = ax.bar(xs, ys, width=width, label=str(run))
        ax.bar_label(bars, fmt="%.3g", fontsize=7)
    ax.set_xticks([j + width * (len(runs) - 1) / 2 for j in range(len(metrics))], metrics, fontsize=8)
    ax.set_title(title, fontsize=10)
    if len(runs) > 1:
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)
