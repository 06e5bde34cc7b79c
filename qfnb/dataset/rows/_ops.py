"""The official SDK's row and column operations on a :class:`~qfnb.dataset.Dataset`.

As in the official SDK, an operation changes the dataset **in place and returns it** (so
``ds.map(f)`` and ``ds = ds.map(f).filter(g)`` both work); ``should_create_new_obj=True``
leaves it alone and returns a new Dataset instead. A platform dataset changed in place is
local data from then on (its ``qianfan_dataset_id`` is cleared): training or ``save()`` uses
the changed rows, never the platform's unchanged copy.

Chosen from the official list by what its docs and examples use (the methods below). Elsewhere:
the local cleaning filters (:mod:`qfnb.dataset.local_data_operators`, for ``filter``), the reports
(:mod:`qfnb.dataset._reports`) and ``load(huggingface_dataset=)`` (the ``hf`` extra). Left out: the
cloud-side ETL operators run by ``process_data`` on the local platform (it has no ETL engine) and
BOS-path loading; ``sample`` keeps qfnb's pandas signature (``sample(n, frac=, seed=)``), not
``sample(sample_number, start, end)``.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pandas as pd

from qfnb._core.errors import ValidationError

from ..consts import QianfanDataGroupColumnName as GROUP
from ..consts import QianfanDatasetPackColumnName as PACK
from ._add import new_rows, packed_entries

logger = logging.getLogger("qfnb.dataset")


class RowOutOfRange(IndexError, OverflowError):
    """A row position outside the dataset: an IndexError, and the OverflowError the official SDK
    raises for it."""


class NoSuchColumn(ValidationError, KeyError):
    """A column name the dataset does not have: a KeyError, and the ValueError the official SDK
    raises for it."""

    def __str__(self) -> str:
        return ValidationError.__str__(self)


class DatasetOps:
    """Mixed into :class:`Dataset` (which provides ``_frame()``, ``list()``, ``_derive``)."""

    _df: pd.DataFrame | None
    _locate: Callable[[int], str] | None

    if TYPE_CHECKING:  # provided by Dataset
        def _frame(self) -> pd.DataFrame: ...
        def list(self, by: Any = None) -> Any: ...
        def _rows(self) -> builtins.list[dict[str, Any]]: ...
        def _derive(self, df: pd.DataFrame) -> Self: ...
        @property
        def is_grouped(self) -> bool: ...
        qianfan_dataset_id: int | str | None

    def _result(self, df: pd.DataFrame, new: bool) -> Self:
        if new:
            return self._derive(df)
        self._df = df.reset_index(drop=True)
        self._locate = None  # rows moved: file line numbers no longer apply
        if self.qianfan_dataset_id is not None:  # changed here: no longer the platform's copy
            logger.info("dataset %s changed locally: it is local data until saved again",
                        self.qianfan_dataset_id)
            self.qianfan_dataset_id = None
        return self

    # ---- rows --------------------------------------------------------------------------------

    def map(self, op: Callable[[Any], Any], should_create_new_obj: bool = False, **kwargs: Any) -> Self:
        """Replace every row with ``op(row)`` (a dict; the row given is a copy). On a packed
        dataset ``op`` gets each entry (as ``list()`` gives it) and returns the new entry;
        a falsy return drops it, a generator gives several (as officially)."""
        if self.is_dataset_packed():
            entries: builtins.list[Any] = []
            for entry in self.list():
                got = op(entry)
                entries.extend(got if isinstance(got, Iterator) else [got] if got else [])
            return self._result(pd.DataFrame({PACK: entries}), should_create_new_obj)
        rows = [op(dict(r)) for r in self.list()]
        for i, r in enumerate(rows):
            if not isinstance(r, Mapping):
                raise TypeError(f"map function returned {type(r).__name__} for row {i}; "
                                "it must return a dict")
        return self._result(pd.DataFrame([dict(r) for r in rows]), should_create_new_obj)

    def filter(self, op: Callable[[Any], bool], should_create_new_obj: bool = False, **kwargs: Any) -> Self:
        """Keep the rows for which ``op(row)`` returns True (a packed dataset's: ``op(entry)``)."""
        keep = []
        for i, row in enumerate(self.list()):
            got = op(row)
            if not isinstance(got, bool | np.bool_):
                raise ValidationError("op", f"the filter function returned {type(got).__name__} for row {i}; "
                                      "it must return True or False")
            keep.append(bool(got))
        return self._result(self._frame()[keep] if keep else self._frame(), should_create_new_obj)

    def append(self, elem: Any, add_new_group: bool = False, is_grouped: bool = True,
               group_id: int = -1, should_create_new_obj: bool = False, **kwargs: Any) -> Self:
        """Add rows at the end: a dict or a list of dicts (of lists of dicts: conversations), a
        DataFrame or a Dataset; a packed dataset takes entries. On a grouped dataset the rows join
        the last conversation unless ``add_new_group`` (see :func:`~qfnb.dataset.rows._add.new_rows`)."""
        return self._added(elem, len(self._frame()), group_id, add_new_group, is_grouped, should_create_new_obj)

    def insert(self, elem: Any, index: int, group_id: int = -1, add_new_group: bool = False,
               is_grouped: bool = True, should_create_new_obj: bool = False, **kwargs: Any) -> Self:
        """Insert rows (as :meth:`append` takes them) before row ``index``, 0 to the row count."""
        n = len(self._frame())
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= n:
            raise ValidationError("index", f"rows are inserted at a position from 0 to {n}, not {index!r}")
        return self._added(elem, index, group_id, add_new_group, is_grouped, should_create_new_obj)

    def _added(self, elem: Any, index: int, group_id: int, add_new_group: bool, is_grouped: bool,
               new: bool) -> Self:
        df = self._frame()
        extra = (pd.DataFrame({PACK: packed_entries(elem)}) if self.is_dataset_packed()
                 else new_rows(elem, df, group_id=group_id, add_new_group=add_new_group, is_grouped=is_grouped))
        return self._result(pd.concat([df.iloc[:index], extra, df.iloc[index:]], ignore_index=True), new)

    def delete(self, index: int | str, should_create_new_obj: bool = False, **kwargs: Any) -> Self:
        """Delete row ``index`` (0 to the row count - 1), or the column named ``index``."""
        if isinstance(index, str):
            return self.col_delete(index, should_create_new_obj)
        n = len(self._frame())
        if isinstance(index, bool) or not isinstance(index, int):
            raise ValidationError("index", f"a row is deleted by its position (an int), not {type(index).__name__}")
        if not 0 <= index < n:
            raise RowOutOfRange(f"no row {index}: rows are numbered 0 to {n - 1}")
        return self._result(self._frame().drop(self._frame().index[index]), should_create_new_obj)

    def __delitem__(self, key: int | str) -> None:
        self.delete(key)

    def to_pylist(self) -> builtins.list[dict[str, Any]]:
        """All rows as dicts (a packed dataset's as ``{"_pack": entry}``, as officially)."""
        return self._rows()

    def row_number(self) -> int:
        return len(self._frame())

    def column_number(self) -> int:
        return len(self._frame().columns)

    # ---- columns -----------------------------------------------------------------------------

    def col_names(self) -> builtins.list[str]:
        """The column names."""
        return [str(c) for c in self._frame().columns]

    def col_list(self, by: str | int | Sequence[str | int] | None = None) -> dict[str, builtins.list[Any]]:
        """Columns as ``{name: [values]}`` (all, or those ``by`` names or numbers)."""
        names = self._names(by) if by is not None else self.col_names()
        return {n: self._frame()[n].tolist() for n in names}

    def col_map(self, op: Callable[[dict[str, builtins.list[Any]]], dict[str, builtins.list[Any]]],
                should_create_new_obj: bool = False, **kwargs: Any) -> Self:
        """Replace every column ``{name: values}`` with what ``op`` returns (one or more
        columns of the same length, possibly renamed)."""
        out: dict[str, builtins.list[Any]] = {}
        for name in self.col_names():
            got = op({name: self._frame()[name].tolist()})
            if not isinstance(got, Mapping):
                raise TypeError(f"col_map function returned {type(got).__name__} for column {name!r}; "
                                "it must return {name: [values]}")
            out.update(got)
        return self._result(_frame_of_columns(out, "col_map"), should_create_new_obj)

    def col_filter(self, op: Callable[[dict[str, builtins.list[Any]]], bool],
                   should_create_new_obj: bool = False, **kwargs: Any) -> Self:
        """Keep the columns for which ``op({name: values})`` is true."""
        keep = [n for n in self.col_names() if op({n: self._frame()[n].tolist()})]
        return self._result(self._frame()[keep], should_create_new_obj)

    def col_append(self, elem: Mapping[str, Any], should_create_new_obj: bool = False,
                   **kwargs: Any) -> Self:
        """Add columns: ``{"name": "c", "data": [...]}`` or ``{"c": [...], ...}``."""
        if not isinstance(elem, Mapping):
            raise ValidationError("elem", 'columns are added as {"name": [one value per row], ...}, '
                                  f"not {type(elem).__name__}")
        cols = {elem["name"]: elem["data"]} if set(elem) == {"name", "data"} else dict(elem)
        df = self._frame().copy()
        for name, data in cols.items():
            if not isinstance(name, str):
                raise TypeError(f"elem: a column name must be a str, not {type(name).__name__}")
            if not isinstance(data, builtins.list):
                raise TypeError(f"elem.{name}: a column's data must be a list, not {type(data).__name__}")
            if name in df.columns:
                raise ValidationError(f"elem.{name}", "a column of that name exists")
            if len(data) != len(df):
                raise ValidationError(f"elem.{name}", f"must be a list of {len(df)} values (one per row)")
            df[name] = data
        return self._result(df, should_create_new_obj)

    def col_insert(self, elem: Mapping[str, Any], index: int, should_create_new_obj: bool = False,
                   **kwargs: Any) -> Self:
        """Insert a column at position ``index``: ``{"name": "c", "data": [...]}``."""
        if not isinstance(elem, Mapping) or set(elem) != {"name", "data"}:
            raise ValidationError("elem", 'must be {"name": <column name>, "data": [one value per row]}')
        df = self._frame().copy()
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= len(df.columns):
            raise ValidationError("index", f"must be a column position in [0, {len(df.columns)}], got {index!r}")
        name, data = str(elem["name"]), elem["data"]
        if name in df.columns:
            raise ValidationError("elem.name", f"a column {name!r} exists")
        if not isinstance(data, builtins.list) or len(data) != len(df):
            raise ValidationError("elem.data", f"must be a list of {len(df)} values (one per row)")
        df.insert(index, name, data)
        return self._result(df, should_create_new_obj)

    def to_pydict(self) -> dict[str, builtins.list[Any]]:
        """The columns: ``{name: [value per row]}``."""
        return {str(c): self._frame()[c].tolist() for c in self._frame().columns}

    def col_delete(self, index: str | Sequence[str], should_create_new_obj: bool = False,
                   **kwargs: Any) -> Self:
        """Delete a column (or several)."""
        return self._result(self._frame().drop(columns=self._names(index)), should_create_new_obj)

    def col_renames(self, new_names: Sequence[str], should_create_new_obj: bool = False,
                    **kwargs: Any) -> Self:
        """Rename every column, in order (on a grouped dataset the ``_group`` column keeps its
        name when ``new_names`` leaves it out, as officially)."""
        cols = builtins.list(self._frame().columns)
        new_names = builtins.list(new_names)
        if GROUP in cols and GROUP not in new_names and len(new_names) == len(cols) - 1:
            new_names.insert(cols.index(GROUP), GROUP)
        if len(new_names) != len(self._frame().columns):
            raise ValidationError("new_names", f"give {len(self._frame().columns)} names, got {len(new_names)}")
        return self._result(self._frame().set_axis(list(new_names), axis=1), should_create_new_obj)

    def select_columns(self, names: Sequence[str], should_create_new_obj: bool = False,
                       **kwargs: Any) -> Self:
        """Keep only the columns ``names``, in that order."""
        return self._result(self._frame()[self._names(names)], should_create_new_obj)

    def _names(self, by: str | int | Sequence[str | int]) -> builtins.list[str]:
        if not isinstance(by, str | int | builtins.list | tuple):
            raise ValidationError("by", f"columns are chosen by name or position (or a list of them), "
                                  f"not {type(by).__name__}")
        items = [by] if isinstance(by, str | int) else builtins.list(by)
        cols = self.col_names()
        out = []
        for item in items:
            name = cols[item] if isinstance(item, int) and not isinstance(item, bool) else str(item)
            if name not in cols:
                raise NoSuchColumn("by", f"no column {name!r}; columns are {cols}")
            out.append(name)
        return out

    @property
    def inner_table(self) -> Any:
        """The rows as a ``pyarrow.Table`` (a snapshot; needs pyarrow, which qfnb does not
        install): what the official SDK hands a data source's ``save(table)`` as
        ``table.inner_table``, so a ``DataSource`` written for it saves a qfnb Dataset too."""
        try:
            import pyarrow
        except ImportError as exc:
            raise ImportError("Dataset.inner_table is a pyarrow Table: pip install pyarrow") from exc
        return pyarrow.Table.from_pylist(self._rows())

    # ---- groups and packing ------------------------------------------------------------------

    def is_dataset_grouped(self) -> bool:
        return GROUP in self._frame().columns

    def is_dataset_packed(self) -> bool:
        return builtins.list(self._frame().columns) == [PACK]

    def is_dataset_located_in_qianfan(self) -> bool:
        return self.qianfan_dataset_id is not None

    def add_default_group_column(self, should_create_new_obj: bool = False) -> Self:
        """Give every row its own group (a one-turn conversation), unless already grouped."""
        if self.is_dataset_grouped():
            return self._result(self._frame(), should_create_new_obj)
        return self._result(self._frame().assign(**{GROUP: range(len(self._frame()))}), should_create_new_obj)

    def delete_group_column(self, should_create_new_obj: bool = False) -> Self:
        return self._result(self._frame().drop(columns=[GROUP], errors="ignore"), should_create_new_obj)

    def pack(self, should_create_new_obj: bool = False) -> Self:
        """One row per conversation: a single ``_pack`` column holding the list of its turns."""
        if self.is_dataset_packed():
            return self._result(self._frame(), should_create_new_obj)
        if not self.is_dataset_grouped():
            raise ValidationError(GROUP, "pack() needs a grouped dataset (a _group column)")
        groups: dict[Any, builtins.list[dict[str, Any]]] = {}
        for row in self._rows():
            groups.setdefault(row.pop(GROUP), []).append(row)
        return self._result(pd.DataFrame({PACK: builtins.list(groups.values())}), should_create_new_obj)

    def unpack(self, should_create_new_obj: bool = False) -> Self:
        """The inverse of :meth:`pack`: one row per turn, with a ``_group`` column (a grouped
        dataset, as ``Dataset.load`` gives a packed source, is unpacked already)."""
        if self.is_dataset_grouped():
            return self._result(self._frame(), should_create_new_obj)
        if not self.is_dataset_packed():
            raise ValidationError(PACK, "unpack() needs a packed dataset (a single _pack column)")
        rows = [{**turn, GROUP: g} for g, conv in enumerate(self._frame()[PACK].tolist()) for turn in conv]
        return self._result(pd.DataFrame(rows), should_create_new_obj)


def _frame_of_columns(cols: dict[str, builtins.list[Any]], field: str) -> pd.DataFrame:
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise ValidationError(field, f"the columns returned have different lengths: "
                              f"{ {k: len(v) for k, v in cols.items()} }")
    return pd.DataFrame(cols)
