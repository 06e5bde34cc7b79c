"""matplotlib charts rendered to PNG bytes with the object API (thread-safe; never pyplot).

Charts are transparent with mid-grey text, axes and grid, so one PNG reads on JupyterLab's
light, dark and high-contrast themes (and in exported HTML) without knowing which is shown.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, ParamSpec

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

#: Readable on white (4.6:1) and on JupyterLab's dark page (#111: 4.3:1); series colours likewise.
INK = "#7a7a7a"
P = ParamSpec("P")
SERIES = ("#3b8fd9", "#e8833a", "#3aa655", "#c678dd", "#d6a419")
_RC: Any = {  # matplotlib rcParams
    "text.color": INK, "axes.labelcolor": INK, "axes.edgecolor": INK, "xtick.color": INK, "ytick.color": INK,
    "grid.color": INK, "axes.facecolor": "none", "figure.facecolor": "none", "savefig.transparent": True,
    # labels are model names and data: a "$" is a dollar sign, never mathtext (which raised on "$$\\href…")
    "text.parse_math": False}


def _themed(chart: Callable[P, bytes]) -> Callable[P, bytes]:
    """Draw ``chart`` under the theme's rcParams: every text it makes takes them when it is made."""

    @functools.wraps(chart)
    def drawn(*args: P.args, **kwargs: P.kwargs) -> bytes:
        import matplotlib as mpl

        with mpl.rc_context(_RC):
            return chart(*args, **kwargs)

    return drawn


def _figure(size: tuple[float, float]) -> Figure:
    """A figure of one axes (drawn inside a :func:`_themed` chart, under the theme's rcParams)."""
    fig = Figure(figsize=size)
    fig.add_subplot()
    return fig


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight", transparent=True)
    return buf.getvalue()


class Rewards(NamedTuple):
    """A RFT run's reward curves ((step, value) points): each step's mean, its moving mean, and the
    checkpoints' held-out mean reward."""

    per_step: Sequence[tuple[int, float]]
    moving: Sequence[tuple[int, float]] = ()
    held_out: Sequence[tuple[int, float]] = ()


def _reward_axis(ax: Any, rewards: Rewards, best: int | None) -> list[Any]:
    """The reward curves on a second y axis (right); the lines it drew, for the legend."""
    right = ax.twinx()
    drawn = []
    for pts, label, kw in ((rewards.per_step, "reward", {"alpha": 0.45, "linewidth": 1.0}),
                           (rewards.moving, "reward (moving mean)", {"linewidth": 1.8})):
        if pts:
            xs, ys = zip(*pts, strict=True)
            drawn += right.plot(xs, ys, color=SERIES[2], label=label, **kw)
    if rewards.held_out:
        xs, ys = zip(*rewards.held_out, strict=True)
        drawn.append(right.scatter(xs, ys, marker="D", s=22, color=SERIES[4], zorder=3, label="held-out reward"))
        chosen = [(s, v) for s, v in rewards.held_out if s == best]
        if chosen:
            drawn.append(right.scatter([chosen[0][0]], [chosen[0][1]], marker="o", s=150, facecolors="none",
                                       edgecolors=SERIES[2], linewidths=2.0, zorder=4, label=f"best (step {best})"))
    right.set_ylabel("reward")
    return drawn


@_themed
def loss_chart(points: Sequence[tuple[int, float]], *, title: str = "training loss",
               eval_points: Sequence[tuple[int, float]] = (), checkpoints: Sequence[tuple[int, float]] = (),
               best: int | None = None, overfit_since: int | None = None,
               score: tuple[str, Sequence[tuple[int, float]]] | None = None, rewards: Rewards | None = None) -> bytes:
    """The training loss by step; with ``eval_points`` (the held-out split's loss) both curves. The saved
    ``checkpoints`` ((step, held-out loss)) are marks, the ``best`` one ringed, and from ``overfit_since``
    the over-fit region is shaded; ``score`` (a name and its (step, value) points: a preference run's
    held-out accuracy, a PostPretrain run's perplexity) or a RFT run's ``rewards`` is drawn against its
    own axis on the right. The legend sits outside the plot, so it never covers a curve."""
    fig = _figure((6.4, 2.6))
    ax = fig.axes[0]
    extra = _reward_axis(ax, rewards, best) if rewards is not None else []
    if score is not None and score[1]:
        right = ax.twinx()
        xs, ys = zip(*score[1], strict=True)
        right.plot(xs, ys, color=SERIES[2], linestyle=":", marker="s", markersize=4, linewidth=1.6, label=score[0])
        right.set_ylabel(score[0], fontsize=8, color=INK)
        right.tick_params(colors=INK, labelsize=8)
        right.legend(fontsize=8, frameon=False, loc="lower left", bbox_to_anchor=(1.08, 0.0), labelcolor=INK)
    curves = [(points, "train", SERIES[0], "-"), (eval_points, "eval (held out)", SERIES[1], "--")]
    steps = [s for pts, *_ in curves for s, _ in pts]
    for pts, label, color, style in curves:
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, color=color, linestyle=style, linewidth=1.6, label=label,
                    marker="o" if len(xs) < 40 and not checkpoints else None, markersize=3)
    if checkpoints:
        xs, ys = zip(*checkpoints, strict=True)
        ax.scatter(xs, ys, marker="D", s=22, color=SERIES[1], zorder=3, label="checkpoint")
        chosen = [(s, v) for s, v in checkpoints if s == best]
        if chosen:
            ax.scatter([chosen[0][0]], [chosen[0][1]], marker="o", s=150, facecolors="none", edgecolors=SERIES[2],
                       linewidths=2.0, zorder=4, label=f"best (step {best})")
    if overfit_since is not None and steps:
        ax.axvspan(overfit_since, max(steps), color=SERIES[3], alpha=0.2, linewidth=0, label="over-fitting")
    if steps:
        low, high = min(steps), max(steps)
        if low == high:  # one step so far: its own tick, not 0.9, 1.0, 1.1 (or 1.002, 1.008, …)
            ax.set_xlim(low - 1, high + 1)
            ax.set_xticks([low])
        else:
            ax.set_xlim(left=low)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        if eval_points or checkpoints or extra:
            handles = ax.get_legend_handles_labels()[0] + extra
            ax.legend(handles=handles, fontsize=8, frameon=False, loc="upper left",
                      bbox_to_anchor=(1.12 if extra else 1.01, 1.0), labelcolor=INK)
    else:
        ax.text(
            0.5,
            0.5,
            "waiting for the first logged step…",
            ha="center",
            va="center",
            transform=ax.transAxes,
            color=INK,
        )
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return _png(fig)


@_themed
def metric_bars(table: Mapping[str, Mapping[str, float]], *, title: str = "evaluation",
                scales: Mapping[str, tuple[float, float]] | None = None) -> bytes:
    """:func:`metric_figure` as PNG bytes."""
    return _png(metric_figure(table, title=title, scales=scales))


def metric_figure(table: Mapping[str, Mapping[str, float]], *, title: str = "evaluation",
                  scales: Mapping[str, tuple[float, float]] | None = None) -> Figure:
    """Grouped bars: ``{metric: {run_name: value}}`` -> one group per metric, one bar per run.

    ``scales``: ``{metric: (lowest, highest)}`` for metrics on a scale of their own (a judge's 0–5
    score): each such scale gets its own panel with that range as its axis, so a 0–5 score never
    shares an axis with 0–1 metrics. The other metrics share the first panel."""
    scales = {m: scales[m] for m in table if scales and m in scales}
    panels: dict[tuple[float, float] | None, list[str]] = {}
    for m in table:
        panels.setdefault(scales.get(m), []).append(m)
    runs = sorted({r for m in table.values() for r in m}, key=str)
    widths = [max(2.6, 1.3 * len(ms) + 1.2) for ms in panels.values()]
    fig = Figure(figsize=(max(4.0, sum(widths) + 0.8), 3.0))
    fig.subplots_adjust(wspace=0.3, top=0.8)  # (a layout engine collapses the axes under very long names)
    axes = fig.subplots(1, len(panels), squeeze=False, width_ratios=widths)[0] if panels else []
    width = 0.8 / max(len(runs), 1)
    for ax, (scale, metrics) in zip(axes, panels.items(), strict=True):
        top = 0.0
        for i, run in enumerate(runs):
            xs = [j + i * width for j in range(len(metrics))]
            ys = [float(table[m].get(run, float("nan"))) for m in metrics]
            top = max([top, *(y for y in ys if y == y)])
            bars = ax.bar(xs, ys, width=width, label=str(run), color=SERIES[i % len(SERIES)])
            ax.bar_label(bars, fmt="%.3f", fontsize=8, padding=2, color=INK)  # one precision for every label
        if scale is None:
            ax.set_ylim(0, (top or 1.0) * 1.18)  # headroom: the labels above the tallest bar are not clipped
        else:
            low, high = scale
            ax.set_ylim(low, high + (high - low) * 0.18)
            ax.set_title(f"on a {low:g}\u2013{high:g} scale", fontsize=9)
        ax.set_xticks([j + width * (len(runs) - 1) / 2 for j in range(len(metrics))], metrics, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=10, color=INK)
    if len(runs) > 1 and len(axes):
        axes[-1].legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0), labelcolor=INK)
    return fig


@_themed
def usage_bars(table: Mapping[str, Mapping[str, float]], *, title: str = "tokens") -> bytes:
    """Stacked horizontal bars: ``{group: {kind: tokens}}`` (kinds such as prompt, completion,
    trained, saved), one bar per group, the kinds in the order of the first group's."""
    groups = list(table)
    kinds = list(next(iter(table.values()), {}))
    fig = _figure((5.5, 0.5 + 0.35 * max(len(groups), 1)))
    ax = fig.axes[0]
    left = [0.0] * len(groups)
    for i, kind in enumerate(kinds):
        widths = [float(table[g].get(kind, 0.0) or 0.0) for g in groups]
        ax.barh(groups, widths, left=left, color=SERIES[i % len(SERIES)], label=kind, height=0.6)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.invert_yaxis()  # the table's first row on top
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0), labelcolor=INK)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


@_themed
def stress_chart(rows: Sequence[Mapping[str, float]], *, title: str = "stress test") -> bytes:
    """Latency (TTFT p50, latency p50/p90/p99) and throughput (all users' output tokens/s, one
    stream's OTPS, QPS) against concurrent users, one point per round (the rows of
    ``StressTestResult.to_pandas()``)."""
    fig = Figure(figsize=(8.0, 2.8))
    left, right = fig.subplots(1, 2)
    users = [float(r["users"]) for r in rows]
    for i, (key, label, style) in enumerate((("ttft_p50", "TTFT p50", ":"), ("latency_p50", "latency p50", "-"),
                                             ("latency_p90", "p90", "--"), ("latency_p99", "p99", "-."))):
        left.plot(users, [float(r[key]) for r in rows], color=SERIES[i], linestyle=style, marker="o",
                  markersize=3, linewidth=1.5, label=label)
    left.set_xlabel("concurrent users", fontsize=8)
    left.set_ylabel("seconds", fontsize=8)
    left.set_title("latency", fontsize=10)
    left.legend(fontsize=7, frameon=False, labelcolor=INK)
    right.plot(users, [float(r["total_otps"]) for r in rows], color=SERIES[0], marker="o", markersize=3,
               linewidth=1.6, label="output tokens/s, all users")
    right.plot(users, [float(r["otps"]) for r in rows], color=SERIES[2], linestyle="--", marker="o", markersize=3,
               linewidth=1.4, label="OTPS (one user's stream)")
    right.set_ylabel("output tokens / s", fontsize=8)
    right.set_xlabel("concurrent users", fontsize=8)
    qps = right.twinx()  # bars: proportional to the tokens line when answers are of one length, never hidden by it
    qps.bar(users, [float(r["qps"]) for r in rows], color=SERIES[1], alpha=0.45, width=0.5, label="requests/s")
    qps.set_zorder(right.get_zorder() - 1)
    right.patch.set_visible(False)
    qps.set_ylabel("requests / s", fontsize=8, color=INK)
    qps.tick_params(colors=INK)
    for spine in qps.spines.values():
        spine.set_color(INK)
    right.set_title("throughput", fontsize=10)
    right.legend(handles=[*right.get_lines(), *qps.containers], fontsize=7, frameon=False, labelcolor=INK,
                 loc="upper left")
    for ax in (left, right):
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=8)
    qps.set_ylim(bottom=0)
    fig.suptitle(title, fontsize=10, color=INK)
    fig.tight_layout()
    return _png(fig)
