"""Batch inference at scale: at most ``worker_num`` requests in flight, each input sent once.

One async engine (:func:`run_batch`) feeds results to a *sink* (:mod:`.results`): a list
(``abatch_do``), per-input futures (``batch_do``), or a JSONL file (``output_file=``, bounded
memory, resumable: a re-run skips the indices the file already holds as successful).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from qfnb._core.http.retry import AdaptiveLimit, BatchHealth, BatchVerdict, RecentFailures

from .results import (
    BatchFuture,
    BatchStats,
    FileResults,
    FileSink,
    FuturesSink,
    ListSink,
    Sink,
    done_indices,
    read_results,
    record_value,
)

__all__ = ["BatchFuture", "BatchStats", "FileResults", "FileSink", "FuturesSink", "ListSink", "done_indices",
           "read_results", "record_value", "run_batch"]

logger = logging.getLogger("qfnb.batch")

DEFAULT_WORKERS = 64
#: how long a batch keeps retrying one item's transient failures (seconds from its first try)
DEFAULT_RETRY_BUDGET = 600.0

#: ``classify(exc, attempt, health)``: what to do with an item whose ``attempt``-th call failed
Classify = Callable[[BaseException, int, BatchHealth], BatchVerdict]

async def run_batch(call: Callable[[Any], Awaitable[Any]], items: Iterable[Any], sink: Sink, *,
                    worker_num: int | None = None, skip: set[int] | None = None,
                    progress: Any = None, counter: list[int] | None = None,
                    classify: Classify | None = None, retry_budget: float = DEFAULT_RETRY_BUDGET,
                    stats: BatchStats | None = None, clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
    """Call ``call(item)`` for every item not in ``skip``, at most ``worker_num`` at a time.

    Inputs are pulled lazily (one iterator shared by the workers), so each is sent once and
    memory does not grow with the input count. A failure that ``classify`` calls transient is
    queued again after the wait it names (none for a passing fault while the batch is healthy;
    ``Retry-After``; a backoff while most calls fail), for as long as ``retry_budget`` seconds
    from the item's first try; a re-queued item that is due goes before new ones. Throttling
    halves the concurrency, which grows back as calls succeed (AIMD). Other failures, and
    transient ones past the budget, go to ``sink.fail`` as values. Waits read ``clock`` and
    wait on ``sleep`` (a pair: tests pass a virtual clock and its sleep).
    """
    workers = max(1, int(worker_num or DEFAULT_WORKERS))
    limit = AdaptiveLimit(workers)
    failures = RecentFailures()
    stats = stats if stats is not None else BatchStats()
    stats.concurrency = stats.lowest_concurrency = limit.current
    source = enumerate(items)
    skip = skip or set()
    count = counter if counter is not None else [0]
    waiting: list[tuple[float, int, int, Any, float, int]] = []  # (ready, seq, index, item, first, attempt)
    order = itertools.count()
    cond = asyncio.Condition()
    state = {"active": 0, "exhausted": False}
    alarm: dict[str, Any] = {"at": None, "task": None}  # the wake-up for the next re-queued item due

    async def ring(at: float) -> None:
        await sleep(max(0.0, at - clock()))
        async with cond:
            if alarm["at"] == at:
                alarm["at"] = None
            cond.notify_all()

    def arm(at: float) -> None:
        """Wake the waiting workers at ``at`` (on ``clock``), unless an earlier wake-up is set."""
        if alarm["at"] is not None and alarm["at"] <= at:
            return
        if alarm["task"] is not None:
            alarm["task"].cancel()
        alarm["at"], alarm["task"] = at, asyncio.ensure_future(ring(at))

    def take() -> tuple[int, Any, float, int] | bool | None:
        """The next job; None when all is done; False when a worker must wait."""
        now = clock()
        if state["active"] < limit.current:
            if waiting and waiting[0][0] <= now:
                _, _, index, item, first, attempt = heapq.heappop(waiting)
                return index, item, first, attempt
            if not state["exhausted"]:
                for index, item in source:
                    if index not in skip:
                        return index, item, now, 1
                state["exhausted"] = True
        if state["exhausted"] and not waiting and state["active"] == 0:
            return None
        return False

    async def next_job() -> tuple[int, Any, float, int] | None:
        async with cond:
            while True:
                job = take()
                if job is None:
                    cond.notify_all()
                    return None
                if job is not False:
                    state["active"] += 1
                    return job  # type: ignore[return-value]
                if waiting and state["active"] < limit.current:
                    arm(waiting[0][0])
                await cond.wait()

    async def settle(index: int, item: Any, first: float, attempt: int, epoch: int,
                     exc: BaseException | None) -> bool:
        """Book a finished call; True when it was queued again."""
        async with cond:
            state["active"] -= 1
            cond.notify_all()
            if exc is None:
                limit.on_success(epoch)
                failures.note(False)
                return False
            health = BatchHealth(failures.share, limit.throttling)
            verdict = classify(exc, attempt, health) if classify is not None else BatchVerdict(False)
            failures.note(verdict.retry and not verdict.throttled)
            if verdict.throttled and limit.on_throttle(epoch):
                logger.info("batch throttled (%s); concurrency now %d", type(exc).__name__, limit.current)
                stats.lowest_concurrency = min(stats.lowest_concurrency, limit.current)
            ready = clock() + verdict.wait
            if not verdict.retry or ready - first > retry_budget:
                return False
            heapq.heappush(waiting, (ready, next(order), index, item, first, attempt + 1))
            stats.retried += 1
            return True

    async def worker() -> None:
        while (job := await next_job()) is not None:
            index, item, first, attempt = job
            epoch = limit.epoch
            try:
                value = await call(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if await settle(index, item, first, attempt, epoch, exc):
                    continue
                sink.fail(index, exc)
                ok = False
            else:
                await settle(index, item, first, attempt, epoch, None)
                sink.ok(index, value)
                ok = True
            count[0] += 1
            if progress is not None:
                progress.on_result(index, ok)

    tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in [*tasks, alarm["task"]]:
            if t is not None:
                t.cancel()
        stats.concurrency = limit.current


def check_batch_kwargs(kwargs: dict[str, Any]) -> None:
    if kwargs.get("stream"):
        from qfnb._core.errors import ValidationError

        raise ValidationError("stream", "stream=True is not supported in batch calls; iterate do(stream=True) "
                                        "per input instead")
