"""The official ``qianfan.dataset.summarization_method``: what ``Dataset.show_processed_statistics``
computes for each numeric column (mean, min, max, quantiles)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import pandas as pd

__all__ = ["MaxMethod", "MeanMethod", "MinMethod", "QuantileMethod", "SummarizationMethod"]


class SummarizationMethod:
    """One statistic over columns; ``name`` labels its row."""

    name: str = "basic"

    def compute(self, column: pd.Series) -> float:
        raise NotImplementedError

    def calculate(self, ds: Any, columns: Sequence[str], **kwargs: Any) -> list[float]:
        frame: pd.DataFrame = ds.to_pandas()
        return [self.compute(frame[c]) for c in columns]


class MeanMethod(SummarizationMethod):
    name = "mean"

    def compute(self, column: pd.Series) -> float:
        return float(column.mean())


class MinMethod(SummarizationMethod):
    name = "min"

    def compute(self, column: pd.Series) -> float:
        return float(column.min())


class MaxMethod(SummarizationMethod):
    name = "max"

    def compute(self, column: pd.Series) -> float:
        return float(column.max())


class QuantileMethod(SummarizationMethod):
    def __init__(self, q: float) -> None:
        if not 0 <= q <= 1:
            raise ValueError(f"q must be in [0, 1], got {q}")
        self.q = q
        self.name = f"{q * 100}_quantile"

    def compute(self, column: pd.Series) -> float:
        return float(column.quantile(self.q))


def cell_key(value: Any) -> Hashable:
    """A hashable stand-in for a cell (a conversation's list of turns, a dict)."""
    return repr(value) if isinstance(value, list | dict) else value


def is_empty(value: Any) -> bool:
    if isinstance(value, list | dict | str):
        return len(value) == 0
    return bool(pd.isna(value))


def overview(frame: pd.DataFrame) -> pd.DataFrame:
    """``repetition_ratio`` and ``null_ratio`` per column of ``frame``."""
    rows = max(len(frame), 1)
    data = {str(c): [1 - frame[c].map(cell_key).nunique(dropna=False) / rows,
                     sum(1 for v in frame[c] if is_empty(v)) / rows] for c in frame.columns}
    return pd.DataFrame(data, index=["repetition_ratio", "null_ratio"])


def statistics(ds: Any, methods: Sequence[SummarizationMethod] | None = None, **kwargs: Any) -> pd.DataFrame:
    """A row per method, a column per numeric column of ``ds``."""
    methods = list(methods) if methods else [MeanMethod(), MinMethod(), MaxMethod(), QuantileMethod(0.8),
                                             QuantileMethod(0.9)]
    frame: pd.DataFrame = ds.to_pandas()
    columns = [str(c) for c in frame.columns
               if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])]
    return pd.DataFrame([m.calculate(ds, columns, **kwargs) for m in methods], index=[m.name for m in methods],
                        columns=columns)
