"""``qfnb.dataset``: load, validate, transform and upload datasets (pandas-backed), locally and on the
platform. May import ``qfnb.resources``, ``qfnb._core`` and ``qfnb.protocol``; never ``model``,
``evaluation``, ``trainer``, ``agents``, ``notebook`` or ``qfnb.local``."""

from qfnb.resources.console.consts import (
    DataExportDestinationType,
    DataProjectType,
    DataSetType,
    DataSourceType,
    DataStorageType,
    DataTemplateType,
)

from .data_source import AFSDataSource, BosDataSource, DataSource, FileDataSource, FormatType, QianfanDataSource
from .dataset import GROUP_COLUMN, Dataset
from .demo import demo_qa
from .remote._platform import release_if_needed
from .schema import (
    DatasetValidationError,
    Problem,
    QianfanGenericText,
    QianfanNonSortedConversation,
    QianfanQuerySet,
    QianfanSortedConversation,
    Schema,
)
from .table import Table

__all__ = [
    "GROUP_COLUMN", "AFSDataSource", "BosDataSource", "DataExportDestinationType", "DataProjectType",
    "DataSetType", "DataSource", "DataSourceType", "DataStorageType", "DataTemplateType", "Dataset",
    "DatasetValidationError", "FileDataSource", "FormatType", "Problem", "QianfanDataSource", "QianfanGenericText",
    "QianfanNonSortedConversation", "QianfanQuerySet", "QianfanSortedConversation", "Schema", "Table", "demo_qa",
    "release_if_needed",
]
