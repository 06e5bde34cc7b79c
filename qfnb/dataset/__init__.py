"""``qfnb.dataset``: load, validate, transform and upload datasets (pandas-backed)."""

from .dataset import GROUP_COLUMN, Dataset
from .demo import demo_qa
from .schema import (
    DatasetValidationError,
    Problem,
    QianfanGenericText,
    QianfanNonSortedConversation,
    QianfanQuerySet,
    QianfanSortedConversation,
    Schema,
)

__all__ = [
    "GROUP_COLUMN", "Dataset", "DatasetValidationError", "Problem", "QianfanGenericText",
    "QianfanNonSortedConversation", "QianfanQuerySet", "QianfanSortedConversation", "Schema", "demo_qa",
]
