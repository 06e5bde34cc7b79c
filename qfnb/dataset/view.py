"""What the dataset's helper modules (files, the platform upload, LLM runs, the platform's ETL)
read of a :class:`~qfnb.dataset.Dataset` and of its data source: narrow protocols, so a helper
never imports the class it was carved from."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .schema import Schema


class DatasetView(Protocol):
    """A dataset's rows, as the helpers read them (``Dataset`` has it)."""

    schema: Schema | None
    #: the rows were read from conversations (a JSON list of turns per line)
    as_conversations: bool
    #: the column of the expected answer (None: ``response``)
    reference_column: str | None

    @property
    def columns(self) -> builtins.list[str]: ...
    @property
    def is_grouped(self) -> bool: ...
    def is_dataset_packed(self) -> bool: ...
    def groups(self) -> builtins.list[builtins.list[dict[str, Any]]]: ...
    def list(self) -> Any: ...
    def to_pylist(self) -> builtins.list[dict[str, Any]]: ...
    def to_pandas(self) -> pd.DataFrame: ...
    def __len__(self) -> int: ...
    def fetch(self) -> object: ...
    async def afetch(self) -> object: ...


class DataSourceLike(Protocol):
    """Where a dataset is loaded from and saved to (a :mod:`~qfnb.dataset.data_source` object)."""

    def fetch(self, **kwargs: Any) -> Any: ...
    def save(self, table: Any, **kwargs: Any) -> bool: ...


@runtime_checkable
class PlatformSource(Protocol):
    """A data source that is a platform dataset (``QianfanDataSource``)."""

    def platform_storage(self) -> dict[str, Any]:
        """id, template and storage of the platform dataset: ``id``, ``template``,
        ``storage_type``, ``storage_id``, ``storage_path``."""
        ...
