"""Data sources, as the official SDK names them: where a :class:`~qfnb.dataset.Dataset` is
loaded from (``Dataset.load(source=...)``) and saved to (``ds.save(destination=...)``).

- :class:`FileDataSource`: a local file or folder (json / jsonl / csv / txt).
- :class:`QianfanDataSource`: a dataset on the platform (``create_bare_dataset``,
  ``get_existed_dataset``).
- :class:`BosDataSource` / :class:`AFSDataSource`: object storage the official SDK reads through
  its own BOS/AFS clients; qfnb does not read them directly (see their docstrings).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pandas as pd

from qfnb._core.errors import ValidationError
from qfnb._core.runtime import sync
from qfnb.protocol.console.data_enums import TEMPLATE_PROJECT
from qfnb.resources.console import Data
from qfnb.resources.console.consts import (
    DataProjectType,
    DataSetType,
    DataStorageType,
    DataTemplateType,
)

from .consts import QianfanDatasetPackColumnName
from .dataset import Dataset
from .remote._platform import download_items
from .remote._upload import Upload
from .rows._io import read_path, write_path
from .schema import schema_for_template

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config

__all__ = ["AFSDataSource", "BosDataSource", "DataSource", "FileDataSource", "FormatType", "QianfanDataSource"]

logger = logging.getLogger("qfnb.dataset")


class FormatType(Enum):
    """A data source's file format."""

    Json = "json"
    Jsonl = "jsonl"
    Csv = "csv"
    Text = "txt"
    Text2Image = "text2image"


class DataSource:
    """Where a dataset's rows live: ``fetch()`` reads them, ``save(dataset)`` writes them."""

    def fetch(self, **kwargs: Any) -> Dataset:
        raise NotImplementedError

    async def afetch(self, **kwargs: Any) -> Dataset:
        return self.fetch(**kwargs)

    def save(self, table: Dataset, **kwargs: Any) -> bool:
        raise NotImplementedError

    async def asave(self, table: Dataset, **kwargs: Any) -> bool:
        return self.save(table, **kwargs)

    def format_type(self) -> FormatType:
        raise NotImplementedError

    def set_format_type(self, format_type: FormatType) -> None:
        raise NotImplementedError


class FileDataSource(DataSource):
    """A local file, or a folder (``save_as_folder=True``: one file per row when saving;
    ``fetch(using_file_as_element=True)``: one row per file when reading)."""

    def __init__(self, path: str | Path, file_format: FormatType | None = None, save_as_folder: bool = False,
                 **kwargs: Any) -> None:
        self.path = str(path)
        self.save_as_folder = save_as_folder
        self._format = file_format or _format_of(self.path)

    def format_type(self) -> FormatType:
        if self._format is None:
            raise ValidationError("file_format", f"{self.path!r} has no file suffix: give file_format=")
        return self._format

    def set_format_type(self, format_type: FormatType) -> None:
        self._format = FormatType(format_type)

    def fetch(self, using_file_as_element: bool = False, **kwargs: Any) -> Dataset:
        """The rows of the file (or of every file in the folder)."""
        path = Path(self.path)
        if not path.exists():
            raise FileNotFoundError(f"{self.path} does not exist")
        if using_file_as_element:
            files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
            texts = [p.read_text(encoding="utf-8") for p in files]
            return Dataset.create_from_pyobj({QianfanDatasetPackColumnName: texts})
        df, conversations = read_path(path, group=kwargs.get("organize_data_as_group"))
        ds = Dataset(df)
        ds.as_conversations = conversations
        return ds

    def save(self, table: Dataset, **kwargs: Any) -> bool:
        """Write ``table`` in this source's format (a folder: one file per row)."""
        fmt = self.format_type() if self._format is not None or not self.save_as_folder else FormatType.Text
        if self.save_as_folder:
            folder = Path(self.path)
            folder.mkdir(parents=True, exist_ok=True)
            for i, value in enumerate(_values(table)):
                text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                (folder / f"data_{i}.{fmt.value}").write_text(text, encoding="utf-8")
            return True
        target = Path(self.path)
        if target.suffix.lstrip(".").lower() != fmt.value:
            target = target.with_name(f"{target.name}.{fmt.value}")
        write_path(table, target)
        return True


def _values(table: Dataset) -> list[Any]:
    df = table.to_pandas()
    if QianfanDatasetPackColumnName in df.columns:
        return list(df[QianfanDatasetPackColumnName])
    return table.list()  # type: ignore[no-any-return]


def _format_of(path: str) -> FormatType | None:
    suffix = os.path.splitext(os.path.basename(path))[1].lstrip(".").lower()
    if not suffix:
        name = os.path.basename(path)
        suffix = name[1:].lower() if name.startswith(".") and "." not in name[1:] else ""
    if not suffix:
        return None
    for fmt in FormatType:
        if fmt.value == suffix:
            return fmt
    raise ValueError(f"cannot match proper format type for {suffix}")


def _format_of_template(template: DataTemplateType) -> FormatType:
    if template is DataTemplateType.Text2Image:
        return FormatType.Text2Image
    if template is DataTemplateType.GenericText:
        return FormatType.Text
    return FormatType.Jsonl


def _set_type(template: DataTemplateType) -> DataSetType:
    return DataSetType.MultiModel if template is DataTemplateType.Text2Image else DataSetType.TextOnly


class QianfanDataSource(DataSource):
    """A dataset on the platform (one version of it). Build one with :meth:`create_bare_dataset`
    or :meth:`get_existed_dataset`; ``Dataset.load(source=it)`` reads its rows on first use."""

    def __init__(self, id: int | str, group_id: int | str | None = None, name: str = "",
                 set_type: DataSetType = DataSetType.TextOnly,
                 project_type: DataProjectType = DataProjectType.Conversation,
                 template_type: DataTemplateType = DataTemplateType.NonSortedConversation,
                 version: int | str | None = None, storage_type: DataStorageType = DataStorageType.PublicBos,
                 storage_id: str = "", storage_path: str = "", storage_name: str = "", storage_raw_path: str = "",
                 storage_region: str = "bj", info: dict[str, Any] | None = None,
                 data_format_type: FormatType | None = None, config: Config | None = None, **kwargs: Any) -> None:
        self.id = id
        self.group_id = group_id
        self.name = name
        self.set_type = DataSetType(set_type)
        self.project_type = DataProjectType(project_type)
        self.template_type = DataTemplateType(template_type)
        self.version = version
        self.storage_type = DataStorageType(storage_type)
        self.storage_id = storage_id
        self.storage_path = storage_path
        self.storage_name = storage_name
        self.storage_raw_path = storage_raw_path
        self.storage_region = storage_region
        self.info = dict(info or {})
        self.data_format_type = data_format_type or _format_of_template(self.template_type)
        self.config = config
        #: IAM keys the upload to BOS is signed with (the official attributes; None: the configured ones)
        self.ak: str | None = kwargs.get("ak")
        self.sk: str | None = kwargs.get("sk")

    def __repr__(self) -> str:
        return f"QianfanDataSource(id={self.id!r}, name={self.name!r}, template_type={self.template_type.name})"

    def format_type(self) -> FormatType:
        return self.data_format_type

    @property
    def platform_dataset_id(self) -> int | str:
        """The platform dataset a :class:`Dataset` loaded from this source reads (lazily)."""
        return self.id

    def platform_storage(self) -> dict[str, Any]:
        """id, template and storage of this platform dataset (what its ETL task is given)."""
        return {"id": self.id, "template": self.template_type, "storage_type": self.storage_type,
                "storage_id": self.storage_id or None, "storage_path": self.storage_raw_path or None}

    def set_format_type(self, format_type: FormatType) -> None:
        self.data_format_type = FormatType(format_type)

    @classmethod
    def create_bare_dataset(cls, name: str, template_type: DataTemplateType,
                            storage_type: DataStorageType = DataStorageType.PublicBos,
                            storage_id: str | None = None, storage_path: str | None = None,
                            addition_info: dict[str, Any] | None = None, *, config: Config | None = None,
                            **kwargs: Any) -> QianfanDataSource:
        """Create an empty dataset on the platform (``Data.create_bare_dataset``)."""
        template = DataTemplateType(template_type)
        if DataStorageType(storage_type) is DataStorageType.PrivateBos and not (storage_id and storage_path):
            raise ValidationError("storage_id", "storage_id and storage_path are required for private BOS")
        set_type, project = _set_type(template), TEMPLATE_PROJECT[template]
        created = Data.create_bare_dataset(name, set_type, project, template, storage_type, storage_id, storage_path,
                                           config=config, **kwargs).parsed.result
        storage = created.storage_info
        return cls(id=created.dataset_id, group_id=created.group_pk, name=name, set_type=set_type,
                   project_type=project, template_type=template, version=created.version_id,
                   storage_type=storage_type, storage_id=storage.get("storageId", ""),
                   storage_path=storage.get("storagePath", ""), storage_name=storage.get("storageName", ""),
                   storage_raw_path=storage.get("rawStoragePath", ""), storage_region=storage.get("region") or "bj",
                   info={**created.model_dump(by_alias=True, exclude_unset=True), **(addition_info or {})},
                   config=config)

    @classmethod
    def get_existed_dataset(cls, dataset_id: int | str, is_download_to_local: bool = True, *,
                            config: Config | None = None, **kwargs: Any) -> QianfanDataSource:
        """The platform dataset ``dataset_id`` (``Data.get_dataset_info``); its rows are read
        when a :class:`Dataset` loaded from it is first used, whatever ``is_download_to_local``."""
        result = Data.get_dataset_info(dataset_id, config=config, **kwargs)["result"]
        version = result.get("versionInfo") or {}
        storage = version.get("storage") or {}
        return cls(id=dataset_id, group_id=result.get("groupPK"), name=result.get("name", ""),
                   set_type=DataSetType(version.get("dataType", DataSetType.TextOnly)),
                   project_type=DataProjectType(version.get("projectType", DataProjectType.Conversation)),
                   template_type=DataTemplateType(version.get("templateType", DataTemplateType.NonSortedConversation)),
                   version=version.get("versionId"),
                   storage_type=DataStorageType(version.get("storageType", DataStorageType.PublicBos)),
                   storage_id=storage.get("storageId", ""), storage_path=storage.get("storagePath", ""),
                   storage_name=storage.get("storageName", ""), storage_raw_path=storage.get("rawStoragePath", ""),
                   storage_region=storage.get("region") or "bj", info=result, config=config)

    def fetch(self, **kwargs: Any) -> Dataset:
        """Blocking :meth:`afetch`."""
        return sync.run(self.afetch(**kwargs))

    async def afetch(self, **kwargs: Any) -> Dataset:
        """The dataset's entities as the platform exports them, in the official table's shape: a
        file of conversations (lists of turns) is packed, one ``_pack`` row per conversation;
        a file of objects gives a row each. ``Dataset(inner_table=source.fetch())`` keeps that
        shape; ``Dataset.load(source=...)`` reads conversations one row per turn."""
        items = await download_items(self.id, self.config)
        if any(isinstance(item, list) for item in items):
            return Dataset(pd.DataFrame({QianfanDatasetPackColumnName: items}), config=self.config)
        return Dataset(pd.DataFrame(items), config=self.config)

    def save(self, table: Dataset, is_annotated: bool = True, does_release: bool = True,
             sup_storage_id: str = "", sup_storage_path: str = "", sup_storage_region: str = "",
             **kwargs: Any) -> bool:
        """Upload ``table`` into this dataset (import, then release unless ``does_release=False``).

        The file goes to this dataset's storage, or, with all three ``sup_storage_*``, to that
        bucket, path and region first (on the cloud, a dataset on the platform's own BOS is filled
        that way); it is signed with ``ak``/``sk`` set on this source, else the configured IAM keys
        (neither: a ValueError before anything is sent). The official SDK refuses a dataset on the
        platform's BOS without a staging bucket; the local platform takes it, so qfnb does not.
        Rows are checked against the table's
        schema, else this dataset's template's. The official ``does_release`` defaults to False:
        qfnb releases, so the dataset can be trained on at once."""
        staging = (sup_storage_id, sup_storage_path, sup_storage_region)
        if any(staging) and not all(staging):
            raise ValidationError("sup_storage_id", "give sup_storage_id, sup_storage_path and sup_storage_region "
                                  "together (the staging bucket, a path in it and its region), or none")
        schema = None
        if table.schema is None:
            with contextlib.suppress(ValidationError):  # no local schema: checked as a conversation
                schema = schema_for_template(self.template_type)
        sync.run(table.asave(qianfan_dataset_id=self.id, schema=schema, release=does_release, config=self.config,
                             upload=Upload(*staging, ak=self.ak or None, sk=self.sk or None,
                                           annotated=is_annotated)))
        return True


class _UnreadableSource(DataSource):
    _what = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def _refuse(self) -> NoReturn:
        raise NotImplementedError(f"qfnb does not read or write {self._what} directly: import the files into a "
                                  "platform dataset (QianfanDataSource) or copy them to a local path "
                                  "(FileDataSource)")

    def fetch(self, **kwargs: Any) -> Dataset:
        self._refuse()

    def save(self, table: Dataset, **kwargs: Any) -> bool:
        self._refuse()


class BosDataSource(_UnreadableSource):
    """A BOS object or folder (the official name). qfnb has no BOS object client of its own:
    use a platform dataset, or a local copy."""

    _what = "BOS objects"


class AFSDataSource(_UnreadableSource):
    """An AFS path (Baidu's internal file system; the official name). Not reachable from qfnb."""

    _what = "AFS paths"

