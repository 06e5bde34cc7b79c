"""Batch inference at scale: at most ``worker_num`` requests in flight, each input sent once.

One async engine (:func:`run_batch`) feeds results to a *sink*: a list (``abatch_do``),
per-input futures (``batch_do``), or a JSONL file (``output_file=``, bounded memory,
resumable: a re-run skips the indices the file already holds as successful).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from qfnb._core.errors import APIError
from qfnb._core.response import QfResponse

__all__ = ["BatchFuture", "FileSink", "ListSink", "read_results", "run_batch"]

logger = logging.getLogger("qfnb.batch")

DEFAULT_WORKERS = 64


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
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def done_indices(path: Path) -> set[int]:
    """Indices a previous run finished successfully (a torn last line is ignored)."""
    done: set[int] = set()
    if not path.exists():
        return done
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("ok") and isinstance(rec.get("index"), int):
                done.add(rec["index"])
    return done


def read_results(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(index, record)`` from a batch output file, in file order (later lines win on re-runs)."""
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("index"), int):
                yield rec["index"], rec


async def run_batch(call: Callable[[Any], Awaitable[Any]], items: Iterable[Any], sink: Sink, *,
                    worker_num: int | None = None, skip: set[int] | None = None,
                    progress: Any = None, counter: list[int] | None = None) -> None:
    """Call ``call(item)`` for every item not in ``skip``, ``worker_num`` at a time.

    Inputs are pulled lazily (one iterator shared by the workers), so each is sent once and
    memory does not grow with the input count. Failures go to ``sink.fail`` as values.
    """
    workers = max(1, int(worker_num or DEFAULT_WORKERS))
    source = enumerate(items)
    skip = skip or set()
    count = counter if counter is not None else [0]

    async def worker() -> None:
        for index, item in source:
            if index in skip:
                continue
            try:
                value = await call(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                sink.fail(index, exc)
                ok = False
            else:
                sink.ok(index, value)
                ok = True
            count[0] += 1
            if progress is not None:
                progress.on_result(index, ok)

    tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()


class BatchFuture:
    """What ``batch_do`` returns while the batch runs in the background.

    ``for f in future: f.result()`` yields, in input order, each result: a QfResponse, or
    the Exception instance if that input failed. With ``output_file=`` nothing is kept in
    memory: iteration and :meth:`results` read the file back when the batch is done.
    """

    def __init__(self, total: int | None, done: concurrent.futures.Future[None], counter: list[int],
                 futures: list[concurrent.futures.Future[Any]] | None = None,
                 output_file: Path | None = None, skipped: int = 0) -> None:
        self._total = total
        self._done = done
        self._counter = counter
        self._futures = futures
        self._output_file = output_file
        self._skipped = skipped
        self._lock = threading.Lock()

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
        return iter(_completed(rec) for rec in self._file_records())

    def results(self) -> list[Any]:
        """Wait, then every result in input order (exceptions as values; records with a file)."""
        self.wait()
        if self._futures is not None:
            return [f.result() for f in self._futures]
        return self._file_records()

    def _file_records(self) -> list[Any]:
        assert self._output_file is not None
        by_index: dict[int, Any] = {}
        for index, rec in read_results(self._output_file):
            if rec.get("ok") or index not in by_index or not by_index[index].get("ok"):
                by_index[index] = rec
        return [by_index.get(i) for i in range(self.total_count())]

    def __repr__(self) -> str:
        total = "?" if self._total is None else self._total
        return f"BatchFuture({self.finished_count()}/{total} finished)"


def _completed(value: Any) -> concurrent.futures.Future[Any]:
    fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
    fut.set_result(value)
    return fut


def check_batch_kwargs(kwargs: dict[str, Any]) -> None:
    if kwargs.get("stream"):
        from qfnb._core.errors import ValidationError

        raise ValidationError("stream", "stream=True is not supported in batch calls; iterate do(stream=True) "
                                        "per input instead")
