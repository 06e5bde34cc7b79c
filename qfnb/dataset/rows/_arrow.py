"""Rows from Hugging Face ``datasets`` and pyarrow tables (the ``hf`` extra: ``pip install 'qfnb[hf]'``).

Neither package is imported here: the objects given convert themselves (``to_pandas``), so qfnb
needs them only where the user already has them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from qfnb._core.errors import ValidationError


def frame_from_arrow(table: Any) -> pd.DataFrame:
    """A pyarrow ``Table``'s rows (its chunks combined)."""
    if not (hasattr(table, "to_pandas") and hasattr(table, "num_rows") and hasattr(table, "schema")):
        raise ValidationError("table", f"must be a pyarrow.Table, got {type(table).__name__}")
    frame: pd.DataFrame = table.to_pandas()
    return frame.reset_index(drop=True)


def frame_from_huggingface(dataset: Any) -> pd.DataFrame:
    """A ``datasets.Dataset``'s rows, or every split of a ``DatasetDict`` one after another (as
    the official SDK concatenates them)."""
    if isinstance(dataset, Mapping):
        splits = [frame_from_huggingface(split) for split in dataset.values()]
        if not splits:
            raise ValidationError("huggingface_dataset", "the DatasetDict has no split")
        return pd.concat(splits, ignore_index=True)
    if not (hasattr(dataset, "to_pandas") and hasattr(dataset, "features")):
        raise ValidationError("huggingface_dataset", "must be a Hugging Face datasets.Dataset or DatasetDict, "
                              f"got {type(dataset).__name__}")
    frame = dataset.to_pandas()
    if not isinstance(frame, pd.DataFrame):  # batched: an iterator of frames
        frame = pd.concat(list(frame), ignore_index=True)
    return frame.reset_index(drop=True)
