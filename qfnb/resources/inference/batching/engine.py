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

from qfnb._core.errors import ValidationError
from qfnb._core.http.client import batch_traffic
from qfnb._core.http.retry import AdaptiveLimit, BatchHealth, BatchVerdict, RecentFailures
from qfnb._core.record import bound
from qfnb._core.record.ledger import earlier_tries
from qfnb._core.record.traces import item_scope
from qfnb._core.runtime.collector import raised_gc_threshold

from .results import BatchStats, ListSink, Sink

__all__ = ["BatchStats", "ListSink", "default_workers", "run_batch"]

logger = logging.getLogger("qfnb.batch")

#: calls in flight by default on the embedded platform: a model's engine has a few slots, and more calls
#: would only wait in its queue
DEFAULT_WORKERS = 64
#: calls in flight by default elsewhere (the cloud): a call mostly waits on the network while the client
#: spends about 0.2 ms of CPU on it, so it takes hundreds in flight to keep that CPU busy (the official SDK
#: sends every input at once); as many as the default pool holds (``max_connections``: 512 left the CPU
#: idle between the answers' bursts, 11-14% fewer calls a second against a 100 ms server); a quota's
#: throttled answers halve it (AIMD)
REMOTE_WORKERS = 1000
#: how long a batch keeps retrying one item's transient failures (seconds from its first try)
DEFAULT_RETRY_BUDGET = 600.0

#: ``classify(exc, attempt, health)``: what to do with an item whose ``attempt``-th call failed
Classify = Callable[[BaseException, int, BatchHealth], BatchVerdict]

def default_workers(embedded: bool, total: int | None) -> int:
    """``worker_num`` when none is given: :data:`DEFAULT_WORKERS` on the embedded platform, else
    :data:`REMOTE_WORKERS`, and never more than the ``total`` inputs (when known)."""
    workers = DEFAULT_WORKERS if embedded else REMOTE_WORKERS
    return max(1, min(workers, total)) if total is not None else workers


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
    stats = stats if stats is not None else BatchStats()
    batch = _Batch(call, items, sink, AdaptiveLimit(workers), stats, skip=skip or set(),
                   progress=progress, count=counter if counter is not None else [0], classify=classify,
                   retry_budget=retry_budget, clock=clock, sleep=sleep)
    with bound(batch_traffic, True):  # the workers' calls say they are batch traffic (the local platform's lanes)
        tasks = [asyncio.ensure_future(batch.worker()) for _ in range(workers)]
    try:
        with raised_gc_threshold():  # the calls in flight and the answers kept outgrow the default at once
            await asyncio.gather(*tasks)
    finally:
        for t in [*tasks, batch.alarm]:
            if t is not None:
                t.cancel()
        stats.concurrency = batch.limit.current


#: a job: ``(index, item, first try's time, attempt)``
_Job = tuple[int, Any, float, int]


class _Batch:
    """The state :func:`run_batch`'s workers share, guarded by ``cond``: the input iterator, the
    re-queued items (a heap on when each is due), the calls in flight and the adaptive limit."""

    def __init__(self, call: Callable[[Any], Awaitable[Any]], items: Iterable[Any], sink: Sink,
                 limit: AdaptiveLimit, stats: BatchStats, *, skip: set[int], progress: Any, count: list[int],
                 classify: Classify | None, retry_budget: float, clock: Callable[[], float],
                 sleep: Callable[[float], Awaitable[object]]) -> None:
        self.call, self.sink, self.limit, self.stats = call, sink, limit, stats
        self.skip, self.progress, self.count, self.classify = skip, progress, count, classify
        self.retry_budget, self.clock, self.sleep = retry_budget, clock, sleep
        stats.concurrency = stats.lowest_concurrency = limit.current
        self.source = enumerate(items)
        self.failures = RecentFailures()
        self.waiting: list[tuple[float, int, int, Any, float, int]] = []  # (ready, seq, index, item, first, attempt)
        self.order = itertools.count()
        self.cond = asyncio.Condition()
        self.active = 0
        self.exhausted = False
        self.alarm_at: float | None = None  # the wake-up for the next re-queued item due
        self.alarm: asyncio.Future[None] | None = None

    async def _ring(self, at: float) -> None:
        await self.sleep(max(0.0, at - self.clock()))
        async with self.cond:
            if self.alarm_at == at:
                self.alarm_at = None
            self.cond.notify_all()

    def _arm(self, at: float) -> None:
        """Wake the waiting workers at ``at`` (on ``clock``), unless an earlier wake-up is set."""
        if self.alarm_at is not None and self.alarm_at <= at:
            return
        if self.alarm is not None:
            self.alarm.cancel()
        self.alarm_at, self.alarm = at, asyncio.ensure_future(self._ring(at))

    def _take(self) -> _Job | bool | None:
        """The next job; None when this worker is done (the inputs are all taken and none is queued
        again: a call in flight that fails and is queued again is retried by its own worker, so an idle
        worker would only wait, woken by every call that ends); False when a worker must wait."""
        now = self.clock()
        if self.active < self.limit.current:
            if self.waiting and self.waiting[0][0] <= now:
                _, _, index, item, first, attempt = heapq.heappop(self.waiting)
                return index, item, first, attempt
            if not self.exhausted:
                for index, item in self.source:
                    if index not in self.skip:
                        return index, item, now, 1
                self.exhausted = True
        if self.exhausted and not self.waiting:
            return None
        return False

    async def _next_job(self) -> _Job | None:
        async with self.cond:
            while True:
                job = self._take()
                if job is None:
                    self.cond.notify_all()
                    return None
                if job is not False:
                    self.active += 1
                    return job  # type: ignore[return-value]
                if self.waiting and self.active < self.limit.current:
                    self._arm(self.waiting[0][0])
                await self.cond.wait()

    async def _settle(self, job: _Job, epoch: int, exc: BaseException | None) -> bool:
        """Book a finished call; True when it was queued again."""
        async with self.cond:
            self.active -= 1
            self.cond.notify_all()
            if exc is None:
                self.limit.on_success(epoch)
                self.failures.note(False)
                return False
            return self._requeue(job, epoch, exc)

    def _requeue(self, job: _Job, epoch: int, exc: BaseException) -> bool:
        """Queue a failed job again if ``classify`` calls it transient and its retry budget lasts."""
        index, item, first, attempt = job
        health = BatchHealth(self.failures.share, self.limit.throttling)
        verdict = self.classify(exc, attempt, health) if self.classify is not None else BatchVerdict(False)
        self.failures.note(verdict.retry and not verdict.throttled)
        if verdict.throttled and self.limit.on_throttle(epoch):
            logger.info("batch throttled (%s); concurrency now %d", type(exc).__name__, self.limit.current)
            self.stats.lowest_concurrency = min(self.stats.lowest_concurrency, self.limit.current)
        ready = self.clock() + verdict.wait
        if not verdict.retry or ready - first > self.retry_budget:
            return False
        heapq.heappush(self.waiting, (ready, next(self.order), index, item, first, attempt + 1))
        self.stats.retried += 1
        return True

    async def worker(self) -> None:
        while (job := await self._next_job()) is not None:
            index = job[0]
            epoch = self.limit.epoch
            try:
                # an evaluation item's span: its calls nest under it; the ledger counts the input's earlier tries
                with item_scope(index), bound(earlier_tries, job[3] - 1):
                    value = await self.call(job[1])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if await self._settle(job, epoch, exc):
                    continue
                self.sink.fail(index, exc)
                ok = False
            else:
                await self._settle(job, epoch, None)
                self.sink.ok(index, value)
                ok = True
            self.count[0] += 1
            if self.progress is not None:
                self.progress.on_result(index, ok)


def check_batch_kwargs(kwargs: dict[str, Any]) -> None:
    if kwargs.get("idempotency_key") is not None:
        raise ValidationError("idempotency_key", "a key names one call, and a batch makes one call per input (each "
                                                 "with a key of its own, the same on its retries); give a body_list "
                                                 "item its own idempotency_key instead")
    if kwargs.get("stream"):
        raise ValidationError("stream", "stream=True is not supported in batch calls; iterate do(stream=True) "
                                        "per input instead")
