"""Helpers of :class:`~qfnb.dataset.Dataset`: rows as plain Python values, and datasets read
from a data source (a platform dataset lazily, others fetched now)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from qfnb._core.errors import ValidationError

from .consts import QianfanDatasetPackColumnName

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config

    from .dataset import Dataset


def clean_row(row: Mapping[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, float) and v != v:
            continue
        out[str(k)] = v.item() if hasattr(v, "item") and not isinstance(v, list | dict | str) else v
    return out


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


def from_source(cls: type[Dataset], source: Any, group: bool | None, config: Config | None) -> Dataset:
    """A dataset over ``source``: a platform one read lazily, others fetched now (any table: pyarrow too)."""
    from ._io import frame_from_obj

    pack = QianfanDatasetPackColumnName
    platform_id = getattr(source, "platform_dataset_id", None)
    if platform_id is not None:
        ds = cls(None, qianfan_dataset_id=platform_id, config=config or getattr(source, "config", None))
    else:
        fetched = source.fetch(organize_data_as_group=group) if group is not None else source.fetch()
        df = frame_from_table(fetched, f"{type(source).__name__}.fetch()")
        if list(df.columns) == [pack] and group is not False:  # packed: one entity (a row or a conversation) per row
            df = frame_from_obj([e if isinstance(e, dict | list) else {pack: e} for e in df[pack].tolist()],
                                "source")
        ds = cls(df.reset_index(drop=True), config=config)
    ds.inner_data_source_cache = source
    return ds
