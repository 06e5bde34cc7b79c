"""The official ``qianfan.dataset.data_insight`` package: :class:`~.insight.DatasetInsight` (the
per-row measures) and the notebook's :class:`~.insight.DataInsight` (``Dataset.show_in_data_insight_mode``)."""

from .insight import DataInsight, DatasetInsight, Distribution, entry_measures

__all__ = ["DataInsight", "DatasetInsight", "Distribution", "entry_measures"]
