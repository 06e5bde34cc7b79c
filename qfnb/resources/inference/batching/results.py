"""What a batch hands back: sinks its results go to (a list, per-input futures, a JSONL file),
the file read back lazily (:class:`FileResults`), and :class:`BatchFuture` with its
:class:`BatchStats`. The scheduler that fills them is :mod:`.engine`.
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, overload

from qfnb._core.errors import APIError, QfnbError, api_error
from qfnb._core.http.response import QfResponse
from qfnb.protocol.wires.codec import fastjson
from qfnb.resources.structured import results_df

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["BatchFuture", "BatchStats", "FileResults", "FileSink", "FuturesSink", "ListSink", "Sink",
           "done_indices", "read_results", "record_value"]


class Sink(Protocol):
    def ok(self, index: int, value: Any) -> None: ...
    def fail(self, index: int, exc: BaseException) -> None: ...


class ListSink:
    """Results (or exceptions) by input index."""

    def __init__(self, total: int) -> None:
        self.results: list[Any] = [None] * total

    def ok(self, index: int, value: Any) -> None:
        self.results[index] = value

    def fail(self, index: int, exc: BaseException) -> None:
        self.results[index] = exc


class FuturesSink:
    """A ``concurrent.futures.Future`` per input; exceptions are set as *values* (seed API)."""

    def __init__(self, total: int) -> None:
        self.futures: list[concurrent.futures.Future[Any]] = [concurrent.futures.Future() for _ in range(total)]

    def ok(self, index: int, value: Any) -> None:
        self.futures[index].set_result(value)

    def fail(self, index: int, exc: BaseException) -> None:
        self.futures[index].set_result(exc)


def _error_record(exc: BaseException) -> dict[str, Any]:
    rec: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, APIError):
        rec["error_code"] = exc.error_code
    return rec


class FileSink:
    """Append one JSON line per finished input: ``{"index", "ok", "result" | "error"}``.

    Keeps nothing in memory but the set of done indices read at start (for resume).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.done = done_indices(self.path)
        #: one past the highest index written (the input count of a lazy input, once done)
        self.count = max(self.done) + 1 if self.done else 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", encoding="utf-8")
        if self._fh.tell() > 0 and not _ends_with_newline(self.path):
            self._fh.write("\n")  # seal a line torn by a crash so the next record starts clean

    def ok(self, index: int, value: Any) -> None:
        body = value.body if isinstance(value, QfResponse) else value
        self._write({"index": index, "ok": True, "result": body})

    def fail(self, index: int, exc: BaseException) -> None:
        self._write({"index": index, "ok": False, "error": _error_record(exc)})

    def _write(self, record: dict[str, Any]) -> None:
        self.count = max(self.count, record["index"] + 1)
        self._fh.write(fastjson.dumps_text(record) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def done_indices(path: Path) -> set[int]:
    """Indices a previous run finished successfully (a torn last line is ignored)."""
    return {index for index, rec in read_results(path) if rec.get("ok")} if path.exists() else set()


def read_results(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(index, record)`` from a batch output file, in file order (later lines win on re-runs)."""
    return ((index, rec) for _, index, rec in _records(path))


def _records(path: str | os.PathLike[str]) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """``(offset, index, record)`` of each whole record line (a torn or foreign line is skipped)."""
    with Path(path).open("rb") as fh:
        offset = 0
        for line in fh:
            try:
                rec = fastjson.loads(line)
            except ValueError:
                rec = None
            if isinstance(rec, dict) and isinstance(rec.get("index"), int):
                yield offset, rec["index"], rec
            offset += len(line)


def record_value(rec: dict[str, Any] | None, answer: str = "AnswerModel") -> Any:
    """What the batch returns for a file record: a QfResponse (``parsed`` as ``answer``, a model of
    :mod:`qfnb.protocol.wires.qianfan.answers`), or the exception as a value."""
    if rec is None:
        return None
    if rec.get("ok"):
        return QfResponse(200, {}, rec.get("result") or {}).with_answer_named(answer)
    err = rec.get("error") or {}
    if "error_code" in err:
        return api_error(err["error_code"], err.get("message", ""))
    return QfnbError(f"{err.get('type', 'Error')}: {err.get('message', '')}")


class FileResults(Sequence[Any]):
    """A batch's results read back from its output file, in input order, one at a time.

    The same values as without a file (QfResponse, or the exception as a value), but only an
    offset per input is kept in memory; a success wins over an earlier failure of a re-run.
    """

    def __init__(self, path: Path, total: int, answer: str = "AnswerModel") -> None:
        self.path, self._total, self._answer = path, total, answer
        self._offsets: dict[int, int] = {}
        ok: set[int] = set()
        for offset, index, rec in _records(path):
            if rec.get("ok") or index not in ok:
                self._offsets[index] = offset
            if rec.get("ok"):
                ok.add(index)

    def __len__(self) -> int:
        return self._total

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._total))]
        if index < 0:
            index += self._total
        if not 0 <= index < self._total:
            raise IndexError(index)
        offset = self._offsets.get(index)
        if offset is None:
            return None
        with self.path.open("rb") as fh:
            fh.seek(offset)
            return record_value(fastjson.loads(fh.readline()), self._answer)

    def __repr__(self) -> str:
        return f"FileResults({str(self.path)!r}, {self._total} results)"


@dataclass
class BatchStats:
    """What a batch did besides its results: re-queued calls and the concurrency it settled at."""

    retried: int = 0
    concurrency: int = 0
    lowest_concurrency: int = 0


class BatchFuture:
    """What ``batch_do`` returns while the batch runs in the background.

    ``for f in future: f.result()`` yields, in input order, each result: a QfResponse, or
    the Exception instance if that input failed. With ``output_file=`` nothing is kept in
    memory: iteration and :meth:`results` read the file back when the batch is done.
    """

    def __init__(self, total: int | None, done: concurrent.futures.Future[None], counter: list[int],
                 futures: list[concurrent.futures.Future[Any]] | None = None,
                 output_file: Path | None = None, skipped: int = 0, stats: BatchStats | None = None,
                 answer: str = "AnswerModel") -> None:
        #: calls re-queued after a transient failure, and the concurrency the batch settled at
        self.stats = stats if stats is not None else BatchStats()
        self._total = total
        self._done = done
        self._counter = counter
        self._futures = futures
        self._output_file = output_file
        self._answer = answer  # the answer model's name, for the results read back from the file
        self._skipped = skipped
        #: the batch's ``response_format`` (what :meth:`to_dataframe` reads answers with by default)
        self.response_format: Any = None

    def finished_count(self) -> int:
        """Inputs finished so far (successes and failures; resumed ones count as finished)."""
        return self._counter[0] + self._skipped

    def total_count(self) -> int:
        """Number of inputs (for a lazy input without ``len``: the count seen once it is done)."""
        if self._total is None:
            return self.finished_count()
        return self._total

    def task_count(self) -> int:
        return self.total_count()

    def __len__(self) -> int:
        return self.total_count()

    def done(self) -> bool:
        return self._done.done()

    def wait(self, timeout: float | None = None) -> None:
        """Block until every input is finished (a batch-level failure is raised here)."""
        self._done.result(timeout)

    def cancel(self) -> bool:
        return self._done.cancel()

    def __iter__(self) -> Iterator[concurrent.futures.Future[Any]]:
        if self._futures is not None:
            return iter(self._futures)
        self.wait()
        return iter(_completed(value) for value in self._file_results())

    def results(self) -> Sequence[Any]:
        """Wait, then every result in input order: a QfResponse, or the exception as a value.

        With ``output_file=`` the same values are read back from the file one at a time."""
        self.wait()
        if self._futures is not None:
            return [f.result() for f in self._futures]
        return self._file_results()

    def to_dataframe(self, schema: Any = None) -> pd.DataFrame:
        """Wait, then the answers as a DataFrame: one column per field of ``schema`` (a pydantic
        model class or a JSON-schema dict; by default the batch's ``response_format``) and an
        ``error`` column for a row that failed, or whose answer did not parse or validate
        (:func:`qfnb.resources.structured.results_df`)."""
        schema = self.response_format if schema is None else schema
        if schema is None or schema == "text" or (isinstance(schema, dict) and schema.get("type") == "text"):
            raise ValueError("to_dataframe needs a schema: give one, or run the batch with response_format= a "
                             "pydantic model class, a JSON-schema dict or json_object")
        return results_df(self.results(), schema)

    def get_future_list(self) -> list[concurrent.futures.Future[Any]]:
        """The official SDK's name: one finished-or-pending future per input."""
        return list(self)

    def _file_results(self) -> FileResults:
        assert self._output_file is not None
        return FileResults(self._output_file, self.total_count(), self._answer)

    def __repr__(self) -> str:
        total = "?" if self._total is None else self._total
        return f"BatchFuture({self.finished_count()}/{total} finished)"


def _completed(value: Any) -> concurrent.futures.Future[Any]:
    fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
    fut.set_result(value)
    return fut
