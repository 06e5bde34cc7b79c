"""How a ``DataInsight`` (``Dataset.show_in_data_insight_mode``) shows in a notebook: a summary line, the
per-column table (type, empty fields, distinct values, duplicates, mean length), the official
measures of the text columns, and each column's distribution as bars. Inline styles from the theme
(:mod:`qfnb.notebook.render.theme`): readable in light and dark themes, and in an exported notebook."""

from __future__ import annotations

import math
from typing import Any

from qfnb.notebook.render import theme as _theme
from qfnb.resources.safe_html import clean, escape

#: the bars: the theme's brand colour (a shape, not text: no contrast needed against the page)
BAR = "var(--jp-brand-color1, #1976d2)"
HEADERS = {"type": "type", "empty": "empty", "distinct": "distinct", "duplicates": "duplicates",
           "mean_length": "mean length"}
MEASURE_HEADERS = {"content_length": "mean length (chars)", "special_characters_ratio": "special characters",
                   "character_repetition_ratio": "character repetition"}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return escape(str(value))


def _table(frame: Any, headers: dict[str, str], caption: str) -> str:
    head = f'<th style="{_theme.CELL}">column</th>' + "".join(
        f'<th style="{_theme.NUM_CELL}">{h}</th>' for h in headers.values())
    body = "".join(
        f'<tr><td style="{_theme.CELL}">{escape(str(name))}</td>'
        + "".join(f'<td style="{_theme.NUM_CELL if k != "type" else _theme.CELL}">{_fmt(row[k])}</td>'
                  for k in headers) + "</tr>"
        for name, row in frame.iterrows())
    return (f'<div style="color:{_theme.TEXT_MUTED};margin-top:8px">{caption}</div>'
            f'<table style="border-collapse:collapse"><tr>{head}</tr>{body}</table>')


def _bars(dist: Any) -> str:
    top = max((n for _, n in dist.bars), default=0) or 1
    rows = "".join(
        f'<tr><td style="{_theme.CELL};white-space:nowrap">{escape(label)}</td>'
        f'<td style="{_theme.CELL};width:160px"><div class="qfnb-bar" style="background:{BAR};height:10px;'
        f'width:{max(1, round(150 * n / top)) if n else 0}px"></div></td>'
        f'<td style="{_theme.NUM_CELL}">{n}</td></tr>' for label, n in dist.bars)
    return (f'<div class="qfnb-dist" style="display:inline-block;vertical-align:top;margin:8px 16px 0 0">'
            f'<div style="color:{_theme.TEXT}"><b>{escape(dist.column)}</b> '
            f'<span style="color:{_theme.TEXT_MUTED}">{escape(dist.what)}</span></div>'
            f'<table style="border-collapse:collapse">{rows}</table></div>')


def insight_html(insight: Any) -> str:
    """The whole view, one HTML fragment."""
    parts = [f'<div class="qfnb-insight" style="color:{_theme.TEXT}">',
             f"<div><b>data insight</b> — {insight.rows} rows, {len(insight.columns)} columns, "
             f"{insight.duplicate_rows} duplicate rows</div>",
             _table(insight.columns, HEADERS, "columns")]
    if len(insight.measures):
        parts.append(_table(insight.measures, MEASURE_HEADERS, "text columns: means of the official measures"))
    parts.append(f'<div style="color:{_theme.TEXT_MUTED};margin-top:8px">distributions</div>')
    parts.extend(_bars(d) for d in insight.distributions)
    return clean("".join(parts) + "</div>")


def register(ipython: Any) -> None:
    """Show every ``DataInsight`` as :func:`insight_html` (its own ``_repr_html_`` is plain tables)."""
    formatter = ipython.display_formatter.formatters["text/html"]
    formatter.for_type_by_name("qfnb.dataset.data_insight.insight", "DataInsight", insight_html)
