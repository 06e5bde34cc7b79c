"""``Dataset``: tabular data (pandas) that can be validated, saved to the platform and run
through an LLM.

Rows are dicts. A *grouped* dataset (multi-turn conversations) keeps one row per turn with
a ``_group`` column holding the conversation number; files store each group as one JSON list.
"""

from __future__ import annotations

import builtins
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd

from qfnb._core.errors import ValidationError
from qfnb._core.runtime import sync
from qfnb._core.runtime.progress import ProgressArg
from qfnb.resources.safe_html import clean, escape

from ._reports import Reports
from .consts import QianfanDatasetPackColumnName
from .llm._batchjob import platform_version, run_as_job
from .llm._infer import run_llm
from .remote._online import OnlineOps
from .remote._platform import download, upload_dataset
from .remote._upload import Upload
from .rows._arrow import frame_from_arrow, frame_from_huggingface
from .rows._io import frame_from_obj, read_path, source_lines, write_path
from .rows._rows import frame_from_table, is_source
from .schema import QianfanNonSortedConversation, Schema
from .table import Table
from .view import DataSourceLike as DataSource

if TYPE_CHECKING:  # pragma: no cover
    from qfnb._core.config import Config

__all__ = ["GROUP_COLUMN", "Dataset"]


def _one_source(**given: Any) -> None:
    """``Dataset.load`` reads exactly one of its sources; other keywords are refused."""
    sources = ("data_file", "source", "dataframe", "qianfan_dataset_id", "huggingface_dataset")
    named = [n for n in sources if given.get(n) is not None]
    if len(named) != 1:
        raise ValidationError("data_file", "give exactly one of data_file, dataframe, "
                              f"qianfan_dataset_id, huggingface_dataset (got {named or 'none'})")
    extra = [k for k in given if k not in sources]
    if extra:
        raise ValidationError(extra[0], "is not a supported Dataset.load source")

logger = logging.getLogger("qfnb.dataset")
#: a cell's value
V = TypeVar("V")

GROUP_COLUMN = "_group"


class Dataset(Table, OnlineOps, Reports):
    """A dataset backed by a pandas DataFrame, optionally linked to a platform dataset.

    ``Dataset(id=1)`` (as the official SDK's samples write it) is platform dataset 1, the same
    as ``Dataset.load(qianfan_dataset_id=1)``; its rows are fetched on first use. Row access is
    :class:`~qfnb.dataset.table.Table`'s, and its operations (``map``, ``filter``, ``col_map``,
    ``pack``...) are in :mod:`qfnb.dataset.rows._ops`.
    """

    def __init__(self, data: pd.DataFrame | None = None, *, schema: Schema | None = None,
                 qianfan_dataset_id: int | str | None = None,
                 config: Config | None = None, id: int | str | None = None, inner_table: Any = None) -> None:
        if id is not None and qianfan_dataset_id is not None and id != qianfan_dataset_id:
            raise ValidationError("id", "give id= or qianfan_dataset_id=, not two different ids")
        if inner_table is not None:  # the official constructor's table: pyarrow, or a qfnb Dataset
            if data is not None:
                raise ValidationError("inner_table", "give the rows once: a DataFrame or inner_table=, not both")
            data = frame_from_table(inner_table)
        self._df = data if data is not None else None
        self.schema = schema
        #: the data source this dataset was loaded from (the official SDK's attribute)
        self.inner_data_source_cache: Any = None
        #: the columns an LLM run reads, and the expected answer's (official names; None: defaults)
        self.input_columns: builtins.list[str] | None = None
        self.reference_column: str | None = None
        self.qianfan_dataset_id = qianfan_dataset_id if qianfan_dataset_id is not None else id
        self.config = config
        #: names row ``i`` as the user counts it (set when the rows come from a .jsonl/.csv file)
        self._locate: Callable[[int], str] | None = None

    # ---- construction --------------------------------------------------------------------

    @classmethod
    def load(cls, data_file: str | Path | DataSource | None = None, *, source: DataSource | None = None,
             dataframe: pd.DataFrame | None = None,
             qianfan_dataset_id: int | str | None = None, schema: Schema | None = None,
             organize_data_as_group: bool | None = None, config: Config | None = None,
             huggingface_dataset: Any = None, **kwargs: Any) -> Dataset:
        """Load from exactly one source: ``data_file`` (.jsonl/.json/.csv/.txt or a folder of
        them), ``source=`` (a :mod:`~qfnb.dataset.data_source` object; the official SDK's first
        positional argument, so ``Dataset.load(source)`` works too), ``dataframe=``, or
        ``qianfan_dataset_id=`` (rows fetched lazily on first use), or ``huggingface_dataset=`` (a
        ``datasets.Dataset``, or a ``DatasetDict`` whose splits are concatenated).

        ``schema=`` validates right away (raising with every problem found).
        """
        if is_source(data_file):
            if source is not None:
                raise ValidationError("source", "given both positionally and by name")
            data_file, source = None, data_file
        _one_source(data_file=data_file, source=source, dataframe=dataframe, qianfan_dataset_id=qianfan_dataset_id,
                    huggingface_dataset=huggingface_dataset, **kwargs)
        if huggingface_dataset is not None:
            dataframe = frame_from_huggingface(huggingface_dataset)
        if source is not None:
            ds = cls._from_source(source, organize_data_as_group, config)
        elif dataframe is not None:
            if not isinstance(dataframe, pd.DataFrame):
                raise ValidationError("dataframe", f"must be a pandas DataFrame, got "
                                      f"{type(dataframe).__name__}")
            ds = cls(dataframe.reset_index(drop=True).copy(), schema=schema, config=config)
        elif data_file is not None:
            ds = cls._from_file(Path(data_file), organize_data_as_group, schema, config)  # type: ignore[arg-type]
        else:
            return cls(None, schema=schema, qianfan_dataset_id=qianfan_dataset_id, config=config)
        ds.schema = schema
        if schema is not None and ds._df is not None:
            schema.validate(ds._rows(), ds._locate)
        return ds

    @classmethod
    def _from_source(cls, source: DataSource, group: bool | None, config: Config | None) -> Dataset:
        """A dataset over ``source``: a platform one read lazily, others fetched now (any table: pyarrow too)."""
        pack = QianfanDatasetPackColumnName
        platform_id = getattr(source, "platform_dataset_id", None)
        if platform_id is not None:
            ds = cls(None, qianfan_dataset_id=platform_id, config=config or getattr(source, "config", None))
        else:
            fetched = source.fetch(organize_data_as_group=group) if group is not None else source.fetch()
            df = frame_from_table(fetched, f"{type(source).__name__}.fetch()")
            if list(df.columns) == [pack] and group is not False:  # packed: an entity (row, conversation) a row
                df = frame_from_obj([e if isinstance(e, dict | list) else {pack: e} for e in df[pack].tolist()],
                                    "source")
            ds = cls(df.reset_index(drop=True), config=config)
            ds.as_conversations = getattr(fetched, "as_conversations", False) is True
        ds.inner_data_source_cache = source
        return ds

    @classmethod
    def _from_file(cls, path: Path, group: bool | None, schema: Schema | None, config: Config | None) -> Dataset:
        """A file's (or a folder's) rows; a problem is located by the file's line."""
        df, conversations = read_path(path, group=group)
        ds = cls(df, schema=schema, config=config)
        ds.as_conversations = conversations
        lines = source_lines(path)
        if lines is not None and len(lines) == len(ds._df if ds._df is not None else ()):
            name = path.name
            ds._locate = lambda i: f"{name} line {lines[i]}"
        return ds

    @classmethod
    def create_from_pyarrow_table(cls, table: Any, schema: Schema | None = None, **kwargs: Any) -> Dataset:
        """From a ``pyarrow.Table`` (the ``hf`` extra); ``schema=`` validates the rows."""
        return cls.load(dataframe=frame_from_arrow(table), schema=schema)

    @classmethod
    def create_from_pyobj(cls, data: Any, schema: Schema | None = None, *, input_columns: Sequence[str] | None = None,
                          reference_column: str | None = None) -> Dataset:
        """From ``list[dict]``, ``list[list[dict]]`` (grouped), ``list[str]`` or ``dict[str, list]``.

        ``input_columns`` / ``reference_column`` (official names) say which columns an LLM run
        reads and which holds the expected answer."""
        ds = cls(frame_from_obj(data, "data"), schema=schema)
        ds.set_columns(input_columns, reference_column)
        if schema is not None:
            schema.validate(ds._rows())
        return ds

    def set_columns(self, input_columns: Sequence[str] | None = None, reference_column: str | None = None) -> None:
        """Name the input columns and the reference (expected answer) column; checked when given."""
        for name in [*(input_columns or ()), *([reference_column] if reference_column else [])]:
            if self._df is not None and name not in self._df.columns:
                raise ValidationError("input_columns" if name != reference_column else "reference_column",
                                      f"no column {name!r} (columns: {builtins.list(self._df.columns)})")
        self.input_columns = builtins.list(input_columns) if input_columns else None
        self.reference_column = reference_column

    # ---- pandas-like access --------------------------------------------------------------

    def _frame(self) -> pd.DataFrame:
        """The rows, downloading a platform dataset's first (once)."""
        if self._df is None:
            if self.qianfan_dataset_id is None:
                self._df = pd.DataFrame()
            else:
                if sync.in_loop_thread():
                    raise RuntimeError("this platform dataset is not downloaded yet; "
                                       "`await ds.afetch()` first when running on qfnb's event loop")
                sync.run(self.afetch())
        assert self._df is not None
        return self._df

    def _loaded(self, what: str) -> pd.DataFrame:
        """The rows for a property (which never downloads): a clear error when not fetched yet."""
        if self._df is None and self.qianfan_dataset_id is not None:
            raise RuntimeError(f"Dataset.{what}: platform dataset {self.qianfan_dataset_id} is not downloaded "
                               "yet; call ds.fetch() (or `await ds.afetch()`) first")
        return self._frame()

    def fetch(self) -> Dataset:
        """Blocking :meth:`afetch`."""
        self._frame()
        return self

    async def afetch(self) -> Dataset:
        """Download the rows of a platform dataset (once); a no-op for local data."""
        if self._df is None and self.qianfan_dataset_id is not None:
            self._df = await download(self.qianfan_dataset_id, self.config)
        return self

    @property
    def is_grouped(self) -> bool:
        return GROUP_COLUMN in self._loaded("is_grouped").columns

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self._loaded("columns").columns]

    @property
    def id(self) -> int | str | None:
        """The platform dataset id (``qianfan_dataset_id``), once it is on the platform."""
        return self.qianfan_dataset_id

    def sample(self, n: int | None = None, *, frac: float | None = None,
               seed: int | None = None) -> Dataset:
        """A random sample of rows (``pandas.DataFrame.sample`` semantics)."""
        return self._derive(self._frame().sample(n=n, frac=frac, random_state=seed))

    def shuffle(self, seed: int | None = None) -> Dataset:
        """All rows in random order (grouped datasets keep each conversation together)."""
        if GROUP_COLUMN in self._frame().columns:
            groups = list(dict.fromkeys(self._frame()[GROUP_COLUMN].tolist()))
            random.Random(seed).shuffle(groups)
            order = {g: i for i, g in enumerate(groups)}
            df = self._frame().sort_values(GROUP_COLUMN, key=lambda s: s.map(order), kind="stable")
            return self._derive(df)
        return self._derive(self._frame().sample(frac=1.0, random_state=seed))

    def groups(self) -> builtins.list[builtins.list[dict[str, Any]]]:
        """Rows as conversations (one list per group; ungrouped rows are one-turn groups, a
        packed dataset's entries its conversations)."""
        if self.is_dataset_packed():
            return [e if isinstance(e, builtins.list) else [e if isinstance(e, dict) else {"text": e}]
                    for e in self.list()]
        if GROUP_COLUMN not in self._frame().columns:
            return [[r] for r in self._rows()]
        out: dict[Any, builtins.list[dict[str, Any]]] = {}
        for r in self._rows():
            out.setdefault(r.pop(GROUP_COLUMN), []).append(r)
        return list(out.values())

    def _derive(self, df: pd.DataFrame) -> Dataset:
        ds = Dataset(df.reset_index(drop=True), schema=self.schema, config=self.config)
        ds.as_conversations = self.as_conversations
        return ds

    def __repr__(self) -> str:
        if self._df is None and self.qianfan_dataset_id is not None:
            return f"Dataset(qianfan_dataset_id={self.qianfan_dataset_id!r}, not loaded)"
        return f"Dataset({len(self)} rows, columns={self.columns})"

    def _repr_html_(self) -> str:
        if self._df is None and self.qianfan_dataset_id is not None:
            return f"<div><b>Dataset</b> {escape(self.qianfan_dataset_id)} on the platform (not downloaded)</div>"
        head = self._frame().head(10).map(_cut).to_html()  # (to_html takes no max_colwidth; it escapes cells)
        return clean(f"<div><b>Dataset</b> — {len(self)} rows</div>{head}")

    # ---- validation & saving ------------------------------------------------------------

    def validate(self, schema: Schema | None = None) -> None:
        """Check every row against ``schema`` (default: the dataset's, else chat SFT)."""
        (schema or self.schema or QianfanNonSortedConversation()).validate(self._rows(), self._locate)

    def save(self, data_file: str | Path | DataSource | None = None, *, destination: DataSource | None = None,
             qianfan_dataset_id: int | str | None = None,
             qianfan_dataset_create_args: Mapping[str, Any] | None = None,
             schema: Schema | None = None, release: bool = True,
             config: Config | None = None, use_qianfan_special_jsonl_format: bool = False) -> Dataset:
        """Write to ``data_file``, to a data source (``destination=``, or positionally as the
        official SDK takes it), or upload to the platform (a new dataset from
        ``qianfan_dataset_create_args={"name": ..., "template_type": ...}``, or an existing
        ``qianfan_dataset_id``). With none of them, save back to the source it was loaded
        from. Nothing is written when validation fails. ``use_qianfan_special_jsonl_format=True``
        writes every row of an ungrouped set to a .jsonl file as a one-turn conversation.
        """
        targets = [n for n, v in (("data_file", data_file), ("destination", destination),
                                  ("qianfan_dataset_id", qianfan_dataset_id),
                                  ("qianfan_dataset_create_args", qianfan_dataset_create_args)) if v is not None]
        if len(targets) > 1:  # counted before a positional source moves: it is one target too
            raise ValidationError(targets[0], "give exactly one of data_file, destination, qianfan_dataset_id or "
                                  f"qianfan_dataset_create_args (got {targets})")
        if is_source(data_file):
            data_file, destination = None, data_file
        if not targets:
            destination = self.inner_data_source_cache
            if destination is None:
                raise ValidationError("destination", "give exactly one of data_file, destination, qianfan_dataset_id "
                                      "or qianfan_dataset_create_args (this dataset has no source to save back to)")
        if schema is not None and (destination is not None or data_file is not None):
            schema.validate(self._rows())
        if destination is not None:
            destination.save(self)
            return self
        if data_file is not None:
            write_path(self, Path(data_file), conversations=use_qianfan_special_jsonl_format)  # type: ignore[arg-type]
            return self
        return sync.run(self.asave(qianfan_dataset_id=qianfan_dataset_id,
                                   qianfan_dataset_create_args=qianfan_dataset_create_args,
                                   schema=schema, release=release, config=config))

    async def asave(self, *, qianfan_dataset_id: int | str | None = None,
                    qianfan_dataset_create_args: Mapping[str, Any] | None = None,
                    schema: Schema | None = None, release: bool = True,
                    config: Config | None = None, upload: Upload | None = None) -> Dataset:
        """Async :meth:`save` to the platform: create → upload → import → release (``upload``:
        a staging bucket and keys, as :meth:`QianfanDataSource.save` takes them)."""
        dataset_id = await upload_dataset(self, dataset_id=qianfan_dataset_id,
                                          create_args=qianfan_dataset_create_args, schema=schema,
                                          release=release, config=config or self.config, upload=upload)
        self.qianfan_dataset_id = dataset_id
        return self

    # ---- inference -----------------------------------------------------------------------

    def test_using_llm(self, service_or_model: Any = None, *, model: str | None = None,
                       endpoint: str | None = None, prompt_column: str = "prompt",
                       concurrency: int = 8, progress: ProgressArg = None,
                       **params: Any) -> Dataset:
        """Run every prompt through an LLM; returns a Dataset with ``llm_output`` (and
        ``request_latency``) added. A dataset read from a file of conversations
        (``as_conversations``) is run a conversation at a time and gives the official columns
        ``input_chats``, ``llm_output``, ``expected_output`` (``request_complete_latency`` with
        ``does_show_latency=True``).

        ``service_or_model`` is a :class:`qfnb.model.Model`/``Service`` or a model name;
        ``model=``/``endpoint=`` name a ``ChatCompletion`` target directly.
        """
        return sync.run(self.atest_using_llm(service_or_model, model=model, endpoint=endpoint,
                                             prompt_column=prompt_column, concurrency=concurrency,
                                             progress=progress, **params))

    async def atest_using_llm(self, service_or_model: Any = None, *, model: str | None = None,
                              endpoint: str | None = None, prompt_column: str = "prompt",
                              concurrency: int = 8, progress: ProgressArg = None,
                              **params: Any) -> Dataset:
        """Async :meth:`test_using_llm`. A platform model version with no chat service runs as
        a durable platform batch-inference task (``BatchJob``)."""
        await self.afetch()
        version = await platform_version(service_or_model)
        if version is not None:
            df = await run_as_job(self, version, prompt_column=prompt_column, progress=progress, params=params,
                                  config=getattr(service_or_model, "config", None) or self.config)
            return Dataset(df, config=self.config)
        df = await run_llm(self, service_or_model, model=model, endpoint=endpoint,
                           prompt_column=prompt_column, concurrency=concurrency,
                           progress=progress, params=params)
        return Dataset(df, config=self.config)


def _cut(value: V) -> V | str:
    """A text cell as the HTML repr shows it: at most 80 characters."""
    return value[:77] + "..." if isinstance(value, str) and len(value) > 80 else value
