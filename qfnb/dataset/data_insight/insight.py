"""The official SDK's data insight (``Dataset.show_in_data_insight_mode``, ``qianfan.dataset.data_insight``)
as a notebook view.

Officially the insight opens a Streamlit app in a browser tab: the mean of three measures per text
column (content length, special-characters ratio, character-repetition ratio), their histograms
and a filterable table. Here :meth:`Dataset.show_in_data_insight_mode` returns a
:class:`DataInsight` that a notebook shows in the cell (rows, duplicates, empty fields, the three
measures per text column and each column's distribution; drawn by ``qfnb.notebook.data.insight``
with ``%load_ext qfnb``), and whose tables are DataFrames. ``DatasetInsight().insight(ds, column)``
gives the per-row measures as a Dataset, as officially.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qfnb._core.errors import ValidationError
from qfnb.resources.safe_html import clean

from ..local_data_operators import default_special_characters, is_special, repetition_ratio
from ..summarization_method import cell_key, is_empty

if TYPE_CHECKING:  # pragma: no cover
    from ..view import DatasetView

__all__ = ["DataInsight", "DatasetInsight", "Distribution", "entry_measures"]

#: the official measures, by their official names
MEASURES = ("content_length", "special_characters_ratio", "character_repetition_ratio")
#: at most this many distinct values: a column's distribution is its values' counts, not a histogram
FEW_VALUES = 8
BINS = 8


def entry_measures(text: str, character_repetition_length: int = 10) -> dict[str, float]:
    """The official measures of one text: its length, the share of special characters, and the
    share of repeated character n-grams (as ``LocalCheckCharacterRepetitionFilter`` counts them)."""
    special = default_special_characters()
    n = character_repetition_length
    return {"content_length": float(len(text)),
            "special_characters_ratio": sum(1 for ch in text if is_special(ch, special)) / len(text) if text else 0.0,
            "character_repetition_ratio": repetition_ratio(text[i:i + n] for i in range(len(text) - n + 1))}


@dataclass(frozen=True)
class Distribution:
    """One column's distribution: ``(label, count)`` bars, and what was counted (``what``)."""

    column: str
    what: str
    bars: tuple[tuple[str, int], ...]


@dataclass
class DataInsight:
    """A dataset's statistics: ``columns`` (a row per column), ``measures`` (a row per text column:
    the official measures' means), ``distributions`` and the duplicate rows."""

    rows: int
    duplicate_rows: int
    columns: pd.DataFrame
    measures: pd.DataFrame
    distributions: builtins.list[Distribution] = field(default_factory=builtins.list)

    def to_pandas(self) -> pd.DataFrame:
        """The per-column table."""
        return self.columns

    def _repr_html_(self) -> str:
        head = f"<p>data insight: {self.rows} rows, {self.duplicate_rows} duplicate rows</p>"
        return clean(head + str(self.columns.round(3).to_html()) + str(self.measures.round(3).to_html()))

    def __repr__(self) -> str:
        return (f"DataInsight({self.rows} rows, {self.duplicate_rows} duplicate rows)\n{self.columns.round(3)}\n"
                f"{self.measures.round(3)}")


def data_insight(ds: DatasetView, column_names: Sequence[str | None] | None = None) -> DataInsight:
    """The statistics of ``ds``; the measures for ``column_names`` (default: every text column)."""
    frame = ds.to_pandas()
    names = [str(c) for c in frame.columns]
    chosen = [c for c in (column_names or []) if c is not None]
    for name in chosen:
        if name not in names:
            raise ValidationError("column_names", f"no column {name!r}; columns are {names}")
    text_columns = chosen or [c for c in names if _is_text(frame[c])]
    keys = frame.map(cell_key) if len(frame.columns) else frame
    rows = len(frame)
    columns = pd.DataFrame([_column_row(frame[c]) for c in names], index=pd.Index(names, name="column"),
                           columns=["type", "empty", "distinct", "duplicates", "mean_length"])
    measures = pd.DataFrame([_mean_measures(frame[c]) for c in text_columns],
                            index=pd.Index(text_columns, name="column"), columns=list(MEASURES))
    return DataInsight(rows=rows, duplicate_rows=int(keys.duplicated().sum()) if rows else 0, columns=columns,
                       measures=measures, distributions=[_distribution(frame[c], c) for c in names])


class DatasetInsight:
    """The official ``DatasetInsight``: ``insight(ds, column)`` gives a Dataset with a row per entry:
    the official measures and the text (the column, or ``content`` for a dataset of strings)."""

    def insight(self, ds: Any, column: str | None = None, **kwargs: Any) -> Any:
        frame: pd.DataFrame = ds.to_pandas()
        if column is None:
            if len(frame.columns) != 1:
                raise ValidationError("column", f"name the text column (columns are {builtins.list(frame.columns)})")
            column = str(frame.columns[0])
        if column not in frame.columns:
            raise ValidationError("column", f"no column {column!r}; columns are {builtins.list(frame.columns)}")
        texts = ["" if is_empty(v) else str(v) for v in frame[column]]
        out = pd.DataFrame([{**entry_measures(t, **kwargs), column: t} for t in texts],
                           columns=[*MEASURES, column])
        return ds._derive(out)


def _is_text(column: pd.Series) -> bool:
    values = [v for v in column if not is_empty(v)]
    return bool(values) and all(isinstance(v, str) for v in values)


def _kind(column: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(column):
        return "bool"
    if pd.api.types.is_numeric_dtype(column):
        return "number"
    return "text" if _is_text(column) else "object"


def _column_row(column: pd.Series) -> dict[str, Any]:
    keys = column.map(cell_key)
    text = _is_text(column)
    lengths = [len(v) for v in column if isinstance(v, str)]
    return {"type": _kind(column), "empty": sum(1 for v in column if is_empty(v)),
            "distinct": int(keys.nunique(dropna=False)), "duplicates": int(keys.duplicated().sum()),
            "mean_length": float(np.mean(lengths)) if text and lengths else math.nan}


def _mean_measures(column: pd.Series) -> dict[str, float]:
    per_row = [entry_measures(v) for v in column if isinstance(v, str)]
    return {m: float(np.mean([r[m] for r in per_row])) if per_row else math.nan for m in MEASURES}


def _distribution(column: pd.Series, name: str) -> Distribution:
    """Counts of each value (a few distinct ones), else a histogram: of the values (numbers) or of
    the lengths in characters (text); empty fields are a last bar of their own."""
    present = [v for v in column if not is_empty(v)]
    empty = [("(empty)", len(column) - len(present))] if len(present) < len(column) else []
    keys = pd.Series([cell_key(v) for v in present], dtype=object)
    if keys.nunique() <= FEW_VALUES:
        counts = keys.value_counts(sort=True)
        return Distribution(name, "values", tuple((_label(k), int(n)) for k, n in counts.items()) + tuple(empty))
    if _kind(column) == "number":
        return Distribution(name, "values", _histogram([float(v) for v in present]) + tuple(empty))
    lengths = [float(len(str(v))) for v in present]
    return Distribution(name, "length (characters)", _histogram(lengths) + tuple(empty))


def _histogram(values: builtins.list[float]) -> tuple[tuple[str, int], ...]:
    """``BINS`` bars of equal width; whole numbers get whole-number bins labelled ``first–last``."""
    if all(v.is_integer() for v in values):
        low, high = int(min(values)), int(max(values))
        width = max(1, math.ceil((high - low + 1) / BINS))
        counts = np.bincount([(int(v) - low) // width for v in values])
        return tuple((f"{low + i * width}" if width == 1 else f"{low + i * width}–{low + (i + 1) * width - 1}", int(n))
                     for i, n in enumerate(counts))
    counts, edges = np.histogram(values, bins=BINS)
    return tuple((f"{lo:.3g}–{hi:.3g}", int(n)) for lo, hi, n in zip(edges[:-1], edges[1:], counts, strict=True))


def _label(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."
