"""``%qfusage`` as a manager reads it: the ¥ headline (:func:`headline`: paid, and the same tokens at
the real-time price), said first, then one narrow row per group (:class:`UsageTable`: target, calls,
tokens, ¥ paid and real-time, the price used) that fits a page and an exported notebook. The full
figures stay in the DataFrame.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from qfnb.notebook.render.theme import BORDER, CELL, NUM_CELL, TEXT, TEXT_MUTED
from qfnb.resources.safe_html import escape

__all__ = ["UsageTable", "headline"]


def _yuan(value: Any) -> str:
    return "—" if value != value else f"¥{float(value):.4f}"  # NaN: an unpriced model


def headline(table: pd.DataFrame) -> str:
    """``¥0.0227 paid · ¥0.0568 at real-time prices · 3 calls · 1,204 tokens`` (and the calls no
    price covers, where some are unpriced)."""
    if table.empty:
        return "no calls recorded"
    paid, real_time = table["cost_yuan"].sum(), table["real_time_yuan"].sum()
    calls, tokens = int(table["calls"].sum()), int(table["total_tokens"].sum() + table["trained_tokens"].sum())
    parts = [f"¥{paid:.4f} paid", f"¥{real_time:.4f} at real-time prices",
             f"{calls:,} call{'s' * (calls != 1)}", f"{tokens:,} tokens"]
    unpriced = table[table["cost_yuan"].isna()]
    if not unpriced.empty:
        parts.append(f"{int(unpriced['calls'].sum()):,} calls with no list price (not in the ¥)")
    if hits := int(table["cache_hits"].sum()):
        parts.append(f"{hits:,} replayed or reused: no call, no ¥ ({int(table['saved_tokens'].sum()):,} tokens saved)")
    return " · ".join(parts)


#: the narrow table's columns: (heading, how a row shows it, numeric)
_COLUMNS: tuple[tuple[str, Any, bool], ...] = (
    ("target", lambda r: str(r["target"]), False),
    ("calls", lambda r: f"{int(r['calls']):,}", True),
    ("tokens in → out", lambda r: f"{int(r['prompt_tokens']):,} → {int(r['completion_tokens']):,}", True),
    ("¥ paid", lambda r: _yuan(r["cost_yuan"]), True),
    ("¥ real-time", lambda r: _yuan(r["real_time_yuan"]), True),
    ("replayed", lambda r: f"{int(r['cache_hits']):,}", True),
    ("price", lambda r: str(r["price"]), False),
)


class UsageTable(pd.DataFrame):  # type: ignore[misc]  # pandas ships no type information here
    """``qfnb.usage.summary``'s DataFrame (every column, for code) that shows as a narrow table
    (:data:`_COLUMNS`) in a notebook and its export."""

    @property
    def _constructor(self) -> Any:  # a slice or a computation is a plain DataFrame
        return pd.DataFrame

    def _repr_html_(self) -> str | None:
        by = escape(str(self.index.name or ""))
        head = "".join(f"<th style='{NUM_CELL if numeric else CELL};white-space:nowrap'>{escape(name)}</th>"
                       for name, _, numeric in _COLUMNS)
        rows = "".join(
            f"<tr><th style='{CELL}'>{escape(str(group))}</th>"
            + "".join(f"<td style='{NUM_CELL if numeric else CELL}{';white-space:nowrap' if numeric else ''}'>"
                      f"{escape(show(row))}</td>" for _, show, numeric in _COLUMNS) + "</tr>"
            for group, row in self.iterrows())
        return (f"<div class='qfnb-usage' style='max-width:100%;overflow-x:auto;color:{TEXT}'>"
                f"<table style='border-collapse:collapse;font-size:12px;border-top:1px solid {BORDER}'>"
                f"<tr><th style='{CELL}'>{by}</th>{head}</tr>{rows}</table>"
                f"<div style='color:{TEXT_MUTED};font-size:11px'>every column (latency, cloud equivalent, saved "
                f"tokens…): the DataFrame this returns</div></div>")
