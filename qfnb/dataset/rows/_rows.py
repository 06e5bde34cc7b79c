"""Helpers of :class:`~qfnb.dataset.Dataset`: rows as plain Python values, and how a data
source and a table are told apart."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from qfnb._core.errors import ValidationError


def clean_row(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {str(k): v.item() if hasattr(v, "item") and not isinstance(v, list | dict | str) else v
            for k, v in row.items() if not (isinstance(v, float) and v != v)}  # NaN: an empty cell


def is_source(value: Any) -> bool:
    """A data source object (anything with ``fetch`` and ``save``; see :mod:`.data_source`)."""
    return not isinstance(value, str | Path) and callable(getattr(value, "fetch", None)) \
        and callable(getattr(value, "save", None))


def frame_from_table(table: Any, what: str = "inner_table") -> pd.DataFrame:
    """A table's rows as a DataFrame: a pyarrow Table, a DataFrame, a qfnb Dataset or anything
    with ``to_pandas``. A packed table (one ``_pack`` column) stays packed, as officially."""
    if isinstance(table, pd.DataFrame):
        return table
    if not hasattr(table, "to_pandas"):
        raise ValidationError(what, f"gave {type(table).__name__}, not a table (a pyarrow Table or a Dataset)")
    rows = (table.to_pylist() if hasattr(table, "to_pylist")  # python values, not numpy
            else table.to_pandas().to_dict("records"))
    return pd.DataFrame(rows)
