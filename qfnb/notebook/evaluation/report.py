"""Evaluation reports: metrics and samples as styled tables plus a comparison chart.

:class:`EvalReport` takes one ``EvaluationResult`` (its ``metrics_df`` / ``samples_df``) or a
``{name: result}`` dict (e.g. base vs tuned) and renders HTML for browsers and a deterministic
text table (4 decimals) for terminals, saved notebooks and nbval.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from qfnb.evaluation import EvaluationResult
from qfnb.evaluation.stats.judge_check import Verdict, verdict_frame
from qfnb.notebook.render import charts
from qfnb.notebook.render import theme as _theme
from qfnb.resources.safe_html import clean, escape

#: what a report shows: one result, or ``{name: result}`` (e.g. base vs tuned)
Results = EvaluationResult | Mapping[str, EvaluationResult]


def as_results(value: object) -> Results:
    """``value`` as the :class:`~qfnb.evaluation.EvaluationResult` or the ``{name: result}`` dict it must
    be (a TypeError naming what it is; a ValueError for an empty dict)."""
    if isinstance(value, Mapping):
        if not value:
            raise ValueError("no evaluation results given")
        return {str(name): _one(result) for name, result in value.items()}
    return _one(value)


def _one(value: object) -> EvaluationResult:
    if not isinstance(value, EvaluationResult):
        raise TypeError(f"expected an EvaluationResult, got {type(value).__name__}")
    return value


def _styled(frame: pd.DataFrame, highlight: bool) -> str:
    """The metrics table, styled inline (kept by saved notebooks and HTML exports): theme colours,
    4 decimals, the best of each numeric column highlighted (when there are several rows)."""
    best: dict[str, Any] = {}
    if highlight and len(frame.index) > 1:
        for col in frame.columns:
            if pd.api.types.is_numeric_dtype(frame[col]) and frame[col].notna().any():
                best[col] = frame[col].max()
    head = "".join(f'<th style="{_theme.CELL};font-weight:bold">{escape(c)}</th>' for c in frame.columns)
    rows = []
    for idx, row in frame.iterrows():
        cells = []
        for col in frame.columns:
            v = row[col]
            text = "—" if pd.isna(v) else (f"{v:.4f}" if isinstance(v, float | int) else escape(v))
            hit = col in best and not pd.isna(v) and v == best[col]
            style = _theme.NUM_CELL + (";" + _theme.BEST if hit else "")
            cells.append(f'<td class="{"qfnb-best" if hit else ""}" style="{style}">{text}</td>')
        rows.append(f'<tr><th style="{_theme.CELL}">{escape(idx)}</th>{"".join(cells)}</tr>')
    name = escape(frame.index.name or "")
    return (f'<table class="qfnb-eval" style="border-collapse:collapse"><thead><tr><th style="{_theme.CELL}">'
            f'{name}</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')


_PREVIEW = 160  # characters of a long text cell shown before "more"


def _text_cell(value: Any) -> str:
    if isinstance(value, float | int) and not isinstance(value, bool):
        return f'<td style="{_theme.NUM_CELL}">{"—" if pd.isna(value) else f"{value:.4f}"}</td>'
    text = "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
    body = escape(text)
    if len(text) > _PREVIEW:  # an expandable row: a preview, the whole text on a click
        body = (f"<details><summary>{escape(text[:_PREVIEW])}…</summary>"
                f"{escape(text[_PREVIEW:])}</details>")
    return f'<td style="{_theme.CELL};white-space:pre-wrap;overflow-wrap:anywhere;min-width:14ch">{body}</td>'


def samples_html(frame: pd.DataFrame) -> str:
    """The samples table: left-aligned wrapped text, width-limited, long cells expandable."""
    head = "".join(f'<th style="{_theme.CELL};font-weight:bold">{escape(c)}</th>' for c in frame.columns)
    rows = "".join(
        f'<tr><td style="{_theme.NUM_CELL}">{escape(idx)}</td>' + "".join(_text_cell(v) for v in row) + "</tr>"
        for idx, row in zip(frame.index, frame.itertuples(index=False), strict=True)
    )
    return ('<table class="qfnb-samples" style="border-collapse:collapse;max-width:min(100%,1100px)">'
            f'<thead><tr><th style="{_theme.CELL}"></th>{head}</tr></thead><tbody>{rows}</tbody></table>')


def judge_scales(result: Results) -> dict[str, tuple[float, float]]:
    """The score ranges of a result's judges (``{metric: (lowest, highest)}``), of one result or a
    ``{name: result}`` dict."""
    results = result.values() if isinstance(result, Mapping) else [result]
    out: dict[str, tuple[float, float]] = {}
    for r in results:
        for j in r.judges:
            scale = j.get("scale") if isinstance(j, Mapping) else None
            if "metric" in j and scale is not None and len(scale) == 2:
                out[str(j["metric"])] = (float(scale[0]), float(scale[1]))
    return out


#: the comparison report's tables in the theme's colours
THEMED = {"cell": _theme.CELL, "num": _theme.NUM_CELL, "muted": f"color:{_theme.TEXT_MUTED}"}


def stability_html(stability: Any) -> str:
    """Repeat stability: its sentences, the summary table and the inconsistent items."""
    head = f"<h4>Stability over {stability.repeats} repeats</h4><ul>"
    items = "".join(f"<li>{escape(s)}</li>" for s in stability.sentences)
    bad = stability.inconsistent()
    cols = ["model", "index", "input", "agreement", *[c for c in bad.columns if c.startswith("answer_")]]
    table = samples_html(bad[cols].head(10)) if not bad.empty else ""
    note = (f"<details><summary>{len(bad)} item(s) answered inconsistently</summary>{table}</details>"
            if table else "<p>Every item scored the same in every repeat.</p>")
    return f'<div class="qfnb-stability" style="color:{_theme.TEXT}">{head}{items}</ul>{note}</div>'


def sequential_html(record: Any) -> str:
    """A sequential run's decision: the sentence, and what it means for the numbers above."""
    muted = f"color:{_theme.TEXT_MUTED}"
    method = ("Items were drawn in a seeded random order and the comparison was checked after every item with a "
              f"betting confidence sequence (valid under that peeking, alpha={record.alpha:g}); the scores are in "
              f"[{record.bounds[0]:g}, {record.bounds[1]:g}]. Fixed-n tests are not shown: after an early stop "
              "their p-values and CIs would overstate the evidence. Run All replays the same order and answers.")
    return (f'<div class="qfnb-sequential" style="color:{_theme.TEXT}"><h4>Sequential comparison on '
            f"{escape(record.metric)}</h4><p><b>{escape(record.sentence)}</b></p>"
            f'<p style="{muted}">{escape(method)}</p></div>')


class EvalReport:
    """A rich display of one or several evaluation results."""

    def __init__(
        self,
        metrics: pd.DataFrame,
        samples: pd.DataFrame | None = None,
        *,
        chart: Sequence[str] = ("auto",),
        max_rows: int = 10,
        result: Results | None = None,
        scales: Mapping[str, tuple[float, float]] | None = None,
        names: Mapping[str, str] | None = None,
    ) -> None:
        self.metrics = metrics
        #: the result's metric columns shown, and the names they are shown under (None: as they are)
        self.names = dict(names) if names is not None else None
        self.result = result  # what was rendered: an EvaluationResult or a {name: result} dict
        self.samples = samples if samples is not None else pd.DataFrame()
        self.max_rows = max_rows
        wanted = [c for c in chart if c != "auto"]
        unknown = [c for c in wanted if c not in metrics.columns]
        if unknown:
            raise ValueError(f"--chart: unknown metric(s) {unknown}; available: {list(metrics.columns)}")
        self.chart_metrics = wanted or [c for c in metrics.columns if pd.api.types.is_numeric_dtype(metrics[c])]
        #: metrics on a scale of their own (a judge's 0–5 score), charted on their own axis
        self.scales: dict[str, tuple[float, float]] = dict(
            scales if scales is not None else judge_scales(result) if result is not None else {})
        #: ``--compare``: a :class:`qfnb.evaluation.Comparison` shown under the metrics
        self.comparison: Any = None
        #: ``--repeats``: a :class:`qfnb.evaluation.Stability` shown under the metrics
        self.stability: Any = None
        #: what was reused instead of asked (``↺ 42 of 42 answers reused …``), said above the metrics
        self.reused: str | None = None
        #: ``--calibrate``: whether the judge can be used, a :class:`Verdict` per labelled model (first, in bold)
        self.verdicts: list[Verdict] = []
        #: ``--judge`` / ``--calibrate``: what backs the verdicts (labels used, agreement, calibrated means), or
        #: that the judge is uncalibrated
        self.judge_notes: list[str] = []
        #: ``--plan``: a ``PlanReport`` (items needed, assumptions, the full run's line)
        self.plan: Any = None
        #: ``--plan`` in a kernel: the full run's button (``plan.FullRun``), shown under the report
        self.runner: Any = None
        #: ``--label``: the label session (``labelling.LabelSession``: the item asked, the interval, the
        #: verdict) and, in a kernel, its widget (``labelling.LabelWidget``), shown under the report
        self.labelling: Any = None
        self.labeller: Any = None
        #: ``--forecast`` (or a budget): each forecast against what the run recorded (``ForecastCheck``)
        self.forecast: list[Any] = []
        #: ``--sequential``: the run's ``SequentialRecord`` (its decision, order and stopping point)
        self.sequential: Any = result.sequential if isinstance(result, EvaluationResult) else None

    @classmethod
    def from_value(cls, value: object, *, chart: Sequence[str] = ("auto",)) -> EvalReport:
        """The report of ``value``: an ``EvaluationResult`` or a ``{name: result}`` dict (:func:`as_results`)."""
        results = as_results(value)
        if isinstance(results, Mapping):
            metrics, samples = [], []
            for name, result in results.items():
                m = result.metrics_df.copy()
                m.index = [name if len(m.index) == 1 else f"{name}/{i}" for i in m.index]
                metrics.append(m)
                s = result.samples_df
                samples.append(s.rename(columns=lambda c, n=name: c if c in ("input", "reference") else f"{n}:{c}"))
            merged = samples[0]
            for s in samples[1:]:
                merged = merged.join(s.drop(columns=[c for c in ("input", "reference") if c in s.columns]), how="outer")
            frame = pd.concat(metrics)
            frame.index.name = "llm"
            return cls(frame, merged, chart=chart, result=results)
        return cls(results.metrics_df, results.samples_df, chart=chart, result=results)

    def score_lines(self) -> list[str]:
        """Each model's own score on each per-item metric with its 95% CI (one result's; the items
        resampled): ``Tiny-Chat: exact_match 0.83 (95% CI 0.50–1.00, 6 items)``."""
        if not isinstance(self.result, EvaluationResult):  # a {name: result} dict: each run's own table
            return []
        lines = []
        names = self.names if self.names is not None else {c: c for c in self.metrics.columns}
        for (model, metric), row in self.result.score_intervals().iterrows():
            if metric not in names:  # a column the report does not show (a family's other scores)
                continue
            metric = names[metric]
            ci = (f"95% CI {row['low']:.2f}–{row['high']:.2f}, " if row["low"] == row["low"] else "no CI: ")
            n = int(row["n"])
            lines.append(f"{model}: {metric} {row['mean']:.2f} ({ci}{n} item{'s' * (n != 1)})")
        return lines

    def _scores_html(self) -> str:
        scores = self.score_lines()
        if not scores:
            return ""
        return (f'<details class="qfnb-score-ci"><summary>each model\'s score with its 95% CI</summary>'
                f"<ul>{''.join(f'<li>{escape(line)}</li>' for line in scores)}</ul></details>")

    @property
    def verdicts_df(self) -> pd.DataFrame:
        """The judge's verdicts as a table: model, judge, metric, use (a ``Use``), reason."""
        return verdict_frame(self.verdicts)

    def chart_png(self) -> bytes:
        table = {
            m: {str(idx): float(v) for idx, v in self.metrics[m].items() if pd.notna(v)} for m in self.chart_metrics
        }
        return charts.metric_bars(table, title="evaluation: metrics per model", scales=self.scales)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        html = self.to_html()
        data: dict[str, Any] = {}
        if self.labeller is not None:  # --label in a kernel: the widget under the report (its item, live)
            data = self.labeller.bundle(self.to_html(labelling=False))
        elif self.runner is not None:  # --plan in a kernel: the report with its full run as one click
            data = self.runner.bundle(html)
        return {**data, "text/plain": repr(self), "text/html": html}

    def to_html(self, *, labelling: bool = True) -> str:
        parts = [f'<div class="qfnb-eval-report" style="color:{_theme.TEXT}">'
                 f"<h4>Evaluation — {len(self.metrics.index)} model(s)</h4>"]
        if self.reused:
            parts.append(f'<div class="qfnb-reused" style="color:{_theme.TEXT_MUTED}">{escape(self.reused)}</div>')
        parts.append(_styled(self.metrics, True) if not self.metrics.empty else "<p>No metrics.</p>")
        parts.append(self._scores_html())
        if self.chart_metrics:
            png = base64.b64encode(self.chart_png()).decode()
            parts.append(f'<img class="qfnb-eval-chart" alt="metrics chart" src="data:image/png;base64,{png}"/>')
        parts.append(self._judge_html(labelling))
        if self.forecast:
            parts.append("".join(f"<div class='qfnb-forecast-vs'>{c._repr_html_()}</div>" for c in self.forecast))
        if self.plan is not None:
            parts.append(self.plan.to_html())
        if self.sequential is not None:
            parts.append(sequential_html(self.sequential))
        if self.comparison is not None:
            parts.append(self.comparison.to_html(styles=THEMED))
        if self.stability is not None:
            parts.append(stability_html(self.stability))
        if not self.samples.empty:
            n = min(self.max_rows, len(self.samples))
            parts.append(f"<details><summary>samples (first {n} of {len(self.samples)})</summary>")
            parts.append(samples_html(self.samples.head(self.max_rows)) + "</details>")
        parts.append("</div>")
        return clean("".join(parts))

    def _judge_html(self, labelling: bool) -> str:
        """The judge's calibration (verdicts and notes) and, with ``--label``, the labels' session."""
        out = ""
        if self.verdicts or self.judge_notes:
            verdicts = "".join(f'<p class="qfnb-judge-verdict qfnb-use-{v.use.name.lower().replace("_", "-")}">'
                               f"<b>{escape(v.sentence)}</b></p>" for v in self.verdicts)
            notes = "".join(f"<li>{escape(n)}</li>" for n in self.judge_notes)
            out += f'<div class="qfnb-judge-check"><h4>Judge calibration</h4>{verdicts}<ul>{notes}</ul></div>'
        if self.labelling is not None and labelling:
            out += f'<div class="qfnb-labelling"><h4>Your labels</h4>{self.labelling.to_html()}</div>'
        return out

    def __repr__(self) -> str:
        if self.metrics.empty:
            return "Evaluation: no metrics"
        table = self.metrics.to_string(float_format=lambda v: f"{v:.4f}", na_rep="—")
        reused = f"{self.reused}\n" if self.reused else ""
        text = f"Evaluation — {len(self.metrics.index)} model(s)\n{reused}{table}"
        if scores := self.score_lines():
            text += "\n" + "\n".join(scores)
        if self.verdicts or self.judge_notes:
            text += "\n" + "\n".join([*(v.sentence for v in self.verdicts), *self.judge_notes])
        if self.forecast:
            text += "\n" + "\n".join(repr(c) for c in self.forecast)
        if self.plan is not None:
            text += "\n" + repr(self.plan)
        if self.sequential is not None:
            text += f"\nSequential: {self.sequential.sentence}"
        if self.comparison is not None:  # its notes say which means a corpus-level metric compared
            text += "\n" + "\n".join([*self.comparison.sentences, *self.comparison.notes])
        if self.stability is not None:
            text += "\n" + "\n".join(self.stability.sentences)
        if self.labelling is not None:
            text += f"\nYour labels: {self.labelling.verdict}"
        return text
