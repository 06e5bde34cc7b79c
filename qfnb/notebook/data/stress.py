"""How a ``StressTestResult`` shows in a notebook: the per-round table and the latency/throughput chart
(``charts.stress_chart``, transparent and mid-grey: readable in light and dark themes)."""

from __future__ import annotations

import base64
from typing import Any

from qfnb.notebook.render import charts
from qfnb.notebook.render import theme as _theme
from qfnb.resources.safe_html import clean, escape

#: the columns the table shows, in order, with their headers
COLUMNS = {"users": "users", "requests": "requests", "errors": "errors", "qps": "QPS", "otps": "OTPS",
           "total_otps": "total OTPS",
           "ttft_p50": "TTFT p50 s", "ttft_p90": "TTFT p90 s", "latency_p50": "latency p50 s",
           "latency_p90": "p90 s", "latency_p99": "p99 s"}


def _cell(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else escape(str(value))


def stress_html(result: Any) -> str:
    """The table (a row per round) and the chart, with inline theme-aware styles."""
    rows = [r.summary() for r in result.rounds]
    head = "".join(f'<th style="{_theme.NUM_CELL}">{h}</th>' for h in COLUMNS.values())
    body = "".join("<tr>" + "".join(f'<td style="{_theme.NUM_CELL}">{_cell(row[k])}</td>' for k in COLUMNS)
                   + "</tr>" for row in rows)
    parts = [f'<div class="qfnb-stress" style="color:{_theme.TEXT}">',
             f"<div><b>stress test</b> of {escape(result.target)}</div>",
             f'<table style="border-collapse:collapse"><tr>{head}</tr>{body}</table>']
    if rows:
        png = base64.b64encode(charts.stress_chart(rows, title=f"stress test: {result.target}")).decode()
        parts.append(f'<img alt="latency and throughput by concurrent users" src="data:image/png;base64,{png}"/>')
    if result.stopped:
        parts.append(f'<div style="color:{_theme.TEXT_MUTED}">stopped: {escape(result.stopped)}</div>')
    return clean("".join(parts) + "</div>")


def register(ipython: Any) -> None:
    """Show every ``StressTestResult`` as :func:`stress_html` (its own ``_repr_html_`` has no chart)."""
    formatter = ipython.display_formatter.formatters["text/html"]
    formatter.for_type_by_name("qfnb.dataset.llm.stress", "StressTestResult", stress_html)
