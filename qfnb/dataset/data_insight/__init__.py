"""The official ``qianfan.dataset.data_insight`` package: :class:`~.insight.DatasetInsight` (the
per-row measures) and :class:`~.insight.DataInsight` (``Dataset.show_in_data_insight_mode``).
Part of ``qfnb.dataset``: imports what it may (``resources``, ``_core``, ``protocol``)."""

from .insight import DataInsight, DatasetInsight, Distribution, entry_measures

__all__ = ["DataInsight", "DatasetInsight", "Distribution", "entry_measures"]
