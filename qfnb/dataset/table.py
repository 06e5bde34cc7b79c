"""The official SDK's ``qianfan.dataset.table``: ``Table`` is the row/column-operations base of
:class:`~qfnb.dataset.Dataset` (the official one wraps a pyarrow table, qfnb's a DataFrame)."""

from ._ops import DatasetOps

__all__ = ["Table"]

Table = DatasetOps
