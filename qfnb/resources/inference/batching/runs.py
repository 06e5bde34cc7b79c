"""How a resource's ``abatch_do`` and ``batch_do`` run their items through :func:`.engine.run_batch`:
into a list or a JSONL file (awaited), or into per-input futures or a file (started on qfnb's
loop, a :class:`BatchFuture` returned at once); one call an item, or packed (:mod:`.packing`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from qfnb._core.runtime import sync
from qfnb._core.runtime.progress import ProgressCallback

from . import engine
from .packing import Pack, PackSink, packs
from .results import (
    BatchFuture,
    BatchStats,
    FileResults,
    FileSink,
    FuturesSink,
    ListSink,
)

__all__ = ["acollect", "submit"]

One = Callable[[dict[str, Any]], Awaitable[Any]]


async def _drive(one: One, items: Iterable[dict[str, Any]], sink: Any, total: int | None, *, worker_num: int | None,
                 progress: ProgressCallback | None, classify: engine.Classify, retry_budget: float,
                 counter: list[int] | None = None, stats: BatchStats | None = None,
                 pack: Pack | None = None) -> None:
    """Run the items into ``sink`` (with ``pack``: packed, several in one call), the progress told
    of the start and the close; a file sink is closed."""
    skip = getattr(sink, "done", None)
    try:
        if progress is not None:
            progress.on_start(total)
        if pack is None:
            await engine.run_batch(one, items, sink, worker_num=worker_num, skip=skip, progress=progress,
                                   counter=counter, classify=classify, retry_budget=retry_budget, stats=stats)
        else:
            packed = PackSink(sink, progress, counter)
            await engine.run_batch(pack.call, packed.track(packs(items, skip or (), pack)), packed,
                                   worker_num=worker_num, classify=classify, retry_budget=retry_budget, stats=stats)
    finally:
        if isinstance(sink, FileSink):
            sink.close()
        if progress is not None:
            progress.on_close()


async def acollect(one: One, items: Iterable[dict[str, Any]], total: int | None, *, worker_num: int | None,
                   output_file: str | Path | None, progress: ProgressCallback | None, classify: engine.Classify,
                   retry_budget: float, answer: str = "AnswerModel", pack: Pack | None = None) -> Sequence[Any]:
    """Run the batch and return its results in input order (a file's read back lazily, ``parsed``
    as ``answer``, the name of the calls' answer model); ``pack``: the items travel packed."""
    sink: Any
    if output_file is not None:
        sink = FileSink(output_file)
    else:
        if total is None:
            items = list(items)
            total = len(items)
        sink = ListSink(total)
    await _drive(one, items, sink, total, worker_num=worker_num, progress=progress, classify=classify,
                 retry_budget=retry_budget, pack=pack)
    if isinstance(sink, ListSink):
        return sink.results
    return FileResults(sink.path, total if total is not None else sink.count, answer)


def submit(one: One, items: Iterable[dict[str, Any]], total: int | None, *, worker_num: int | None,
           output_file: str | Path | None, progress: ProgressCallback | None, classify: engine.Classify,
           retry_budget: float, answer: str = "AnswerModel", pack: Pack | None = None) -> BatchFuture:
    """Start the batch on qfnb's loop; its :class:`BatchFuture` at once."""
    if total is None and output_file is None:  # futures need a count; a file does not
        items = list(items)
        total = len(items)
    counter = [0]
    stats = BatchStats()
    futures: list[Any] | None = None
    sink: Any
    skipped = 0
    if output_file is not None:
        sink = FileSink(output_file)
        skipped = sum(1 for i in sink.done if total is None or i < total)
    else:
        assert total is not None
        sink = FuturesSink(total)
        futures = sink.futures
    done = sync.submit(_drive(one, items, sink, total, worker_num=worker_num, progress=progress, classify=classify,
                              retry_budget=retry_budget, counter=counter, stats=stats, pack=pack))
    return BatchFuture(total, done, counter, futures, Path(output_file) if output_file is not None else None,
                              skipped, stats, answer)
