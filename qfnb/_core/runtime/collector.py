"""The cyclic garbage collector's young-generation threshold, raised while a batch runs.

A batch keeps hundreds of calls in flight and every answer it has collected, so its objects
outgrow CPython's default threshold (700 more container objects than were freed) every few
calls: each time the collector walks the young objects, promotes the live calls' to older
generations and, as those fill, walks every object the process holds. It finds nothing (a
call's objects are freed by reference counting) and took about a quarter of a batch's CPU
(``bench/batch_throughput.py --anchor``). :func:`raised_gc_threshold` raises that first
threshold while any batch runs and puts it back after the last: cycles made meanwhile are still
collected, every :data:`BATCH_GC_THRESHOLD` objects instead of every 700.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["BATCH_GC_THRESHOLD", "raised_gc_threshold"]

#: the young generation's threshold while a batch runs: a batch of 8,000 calls keeps about 10 objects an
#: answer, so one collection in it or none (50,000: three, 5-8% more CPU a call, ``--anchor 100``)
BATCH_GC_THRESHOLD = 200_000

_lock = threading.Lock()
_holders = 0
#: the thresholds to put back when the last batch ends (None: nothing was raised)
_saved: tuple[int, ...] | None = None


@contextlib.contextmanager
def raised_gc_threshold(young: int = BATCH_GC_THRESHOLD) -> Iterator[None]:
    """Raise the young generation's threshold to ``young`` while the block runs (batches running at
    once share one raise; the last to end restores the threshold, unless someone set another
    meanwhile). A threshold already higher, or 0 (the collector off), is left alone."""
    global _holders, _saved
    with _lock:
        if _holders == 0:
            before = gc.get_threshold()
            if 0 < before[0] < young:
                gc.set_threshold(young, *before[1:])
                _saved = before
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _saved is not None:
                if gc.get_threshold()[0] == young:
                    gc.set_threshold(*_saved)
                _saved = None
