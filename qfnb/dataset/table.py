"""The official SDK's ``qianfan.dataset.table``: a :class:`Table` is rows and their operations,
with no data source. :class:`~qfnb.dataset.Dataset` is a Table that also loads, saves and lives
on the platform. The official Table wraps a pyarrow table; qfnb's holds a DataFrame and is built
from any table: ``Table(inner_table=<pyarrow.Table, DataFrame or Dataset>)``.
"""

from __future__ import annotations

import builtins
import numbers
from collections.abc import Iterator, Sequence
from typing import Any, Self

import pandas as pd

from qfnb._core.errors import ValidationError

from .consts import QianfanDatasetPackColumnName as PACK
from .rows._ops import DatasetOps, RowOutOfRange
from .rows._rows import clean_row, frame_from_table

__all__ = ["Table"]


class Table(DatasetOps):
    """Rows (a packed table's: entries) and the official row and column operations."""

    qianfan_dataset_id: int | str | None = None
    #: the rows were read from conversations (a JSON list of turns per line, the official SDK's
    #: packed table): a one-turn one is a plain row, saved back and run through an LLM as a conversation
    as_conversations: bool = False

    def __init__(self, inner_table: Any = None) -> None:
        self._df: pd.DataFrame | None = None if inner_table is None else frame_from_table(inner_table)
        self._locate = None

    def _frame(self) -> pd.DataFrame:
        if self._df is None:
            self._df = pd.DataFrame()
        return self._df

    def _derive(self, df: pd.DataFrame) -> Self:
        return type(self)(inner_table=df.reset_index(drop=True))

    def to_pandas(self) -> pd.DataFrame:
        """A copy of the rows as a DataFrame."""
        return self._frame().copy()

    @property
    def is_grouped(self) -> bool:
        return self.is_dataset_grouped()

    def list(self, by: int | slice | Sequence[int] | None = None) -> Any:
        """All rows as dicts (NaN cells dropped), or those ``by`` chooses: a row (int), rows
        (a slice or a list of ints) as a list. A packed dataset's rows are its entries (a
        conversation's list of turns, a dict or a text), as officially. Columns: :meth:`col_list`."""
        if by is None:
            return [r[PACK] for r in self._rows()] if self.is_dataset_packed() else self._rows()
        if isinstance(by, str) or (isinstance(by, list | tuple) and by and isinstance(by[0], str)):
            raise ValidationError("by", f"list() gives rows; for columns use col_list({by!r})")
        if isinstance(by, numbers.Integral | slice | list | tuple):
            got = self[by]
            return got.list() if isinstance(got, Table) else got
        raise ValidationError("by", f"rows are chosen by an int, a slice or a list of ints, not {type(by).__name__}")

    def _rows(self) -> builtins.list[dict[str, Any]]:
        """The rows as dicts, a packed one as ``{"_pack": entry}`` (what schemas check)."""
        return [clean_row(r) for r in self._frame().to_dict("records")]

    def __len__(self) -> int:
        return len(self._frame())

    def __iter__(self) -> Iterator[Any]:
        return iter(self.list())

    def __getitem__(self, key: int | slice | str | Sequence[int]) -> Any:
        """``t[i]`` a row dict (a packed table's entry), ``t[a:b]`` / ``t[[i, j]]`` a table of those
        rows, ``t["col"]`` a list, ``t[["c1", "c2"]]`` ``{"c1": [...], "c2": [...]}`` (as the
        official ``col_list``)."""
        if isinstance(key, list | tuple) and key and all(isinstance(k, str) for k in key):
            return self.col_list(key)
        if isinstance(key, str):
            return self.col_list(key)[key]
        if isinstance(key, numbers.Integral):
            i, n = int(key), len(self)
            if not -n <= i < n:
                raise RowOutOfRange(f"no row {i}: the dataset has {n} rows")
            row = clean_row(self._frame().iloc[i].to_dict())
            return row[PACK] if self.is_dataset_packed() else row
        if isinstance(key, slice):
            return self._derive(self._frame().iloc[key])
        return self._derive(self._frame().iloc[[int(k) for k in key]])  # type: ignore[union-attr]

    def take(self, n: int) -> Self:
        """The first ``n`` rows."""
        return self._derive(self._frame().head(n))

    def take_slice(self, start: int = 0, end: int | None = None) -> Self:
        return self._derive(self._frame().iloc[start:end])
