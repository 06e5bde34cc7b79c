"""The batch scheduler's pacing, against a fake call (no HTTP) on virtual time: a passing fault
costs the batch one more call and no wait, a sick server is backed off from, throttling still
cuts the concurrency, and nothing is lost or duplicated. The scheduler reads and waits on the
clock it is given, so no test here waits for real or reads a wall clock."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from qfnb import ChatCompletion
from qfnb._core.config import Config
from qfnb._core.errors import ConnectionError, RequestError, api_error
from qfnb.resources.inference.batching.engine import BatchStats, ListSink, run_batch
from tests.fakes.clock import VirtualTime


def _classifier() -> Any:
    """The classifier ``batch_do`` uses, with default settings."""
    return ChatCompletion(config=Config.from_env({}, ak="ak", sk="sk"))._batch_classifier({})


class _Sink(ListSink):
    """Results by index, and the order in which the inputs finished."""

    def __init__(self, total: int) -> None:
        super().__init__(total)
        self.order: list[int] = []

    def ok(self, index: int, value: Any) -> None:
        self.order.append(index)
        super().ok(index, value)

    def fail(self, index: int, exc: BaseException) -> None:
        self.order.append(index)
        super().fail(index, exc)


async def test_an_item_failing_again_and_again_goes_back_at_once_while_the_batch_is_healthy() -> None:
    faults = [RequestError("boom", status_code=503), api_error(18, "qps"), ConnectionError("dropped"),
              RequestError("slow down", status_code=429)]
    calls: Counter[int] = Counter()
    vt = VirtualTime()

    async def call(i: int) -> str:
        calls[i] += 1
        await vt.sleep(0.005)
        if i == 0 and calls[0] <= len(faults):
            raise faults[calls[0] - 1]
        return f"answer {i}"

    sink, stats = _Sink(100), BatchStats()
    await run_batch(call, range(100), sink, worker_num=4, classify=_classifier(), stats=stats, clock=vt,
                    sleep=vt.sleep)
    assert sink.results == [f"answer {i}" for i in range(100)] and sum(calls.values()) == 104
    assert [w for w in vt.sleeps if w != 0.005] == []  # no re-queued input waited
    # four failures in a row (two of them a passing throttle), each re-queued with no wait and
    # taken before new inputs: item 0 is done after about five calls of its worker, not after
    # a backoff or a 1 s quota wait while the 99 others finish in about 0.13 s
    assert sink.order.index(0) < 30 and stats.retried == 4 and stats.lowest_concurrency == 4


async def test_an_input_that_keeps_failing_backs_off_instead_of_holding_a_worker() -> None:
    calls: Counter[int] = Counter()
    vt = VirtualTime()

    async def call(i: int) -> str:
        calls[i] += 1
        await vt.sleep(0.002)
        if i == 0:
            raise RequestError("poison", status_code=500)
        return f"answer {i}"

    sink = _Sink(200)
    await run_batch(call, range(200), sink, worker_num=4, classify=_classifier(), retry_budget=0.3, clock=vt,
                    sleep=vt.sleep)
    assert isinstance(sink.results[0], RequestError) and sink.results[1:] == [f"answer {i}" for i in range(1, 200)]
    assert calls[0] < 15, calls[0]  # four at once, then 50, 100, 200 ms... not one every 2 ms


async def test_a_sick_server_is_backed_off_from_not_hammered() -> None:
    calls = 0
    vt = VirtualTime()

    async def call(i: int) -> str:
        nonlocal calls
        calls += 1
        await vt.sleep(0)
        raise ConnectionError("refused")

    sink = _Sink(5)
    start = vt()
    await run_batch(call, range(5), sink, worker_num=5, classify=_classifier(), retry_budget=0.4, clock=vt,
                    sleep=vt.sleep)
    assert all(isinstance(r, ConnectionError) for r in sink.results)
    # every call fails: after the first few the waits grow (50, 100, 200 ms...) per item, and the
    # batch gives up once an item's budget is spent (waiting virtually: the clock it was given)
    assert calls < 60, calls
    assert 0.2 < vt() - start <= 0.4 + 5.0 and max(vt.sleeps) <= 5.0


async def test_a_quota_still_cuts_the_concurrency_and_loses_nothing() -> None:
    in_flight = 0
    seen: list[int] = []
    vt = VirtualTime()

    async def call(i: int) -> str:
        nonlocal in_flight
        in_flight += 1
        seen.append(in_flight)
        try:
            await vt.sleep(0.002)
            if in_flight > 4:  # a server that admits four calls at a time
                raise api_error(18, "qps limit")
            return f"answer {i}"
        finally:
            in_flight -= 1

    sink, stats = _Sink(60), BatchStats()
    await run_batch(call, range(60), sink, worker_num=32, classify=_classifier(), stats=stats, clock=vt,
                    sleep=vt.sleep)
    assert sink.results == [f"answer {i}" for i in range(60)]
    assert sorted(sink.order) == list(range(60))  # each input finished exactly once
    assert stats.lowest_concurrency <= 8 and stats.retried > 0


async def test_the_scheduler_waits_on_the_clock_it_is_given() -> None:
    """A 30 s Retry-After is waited on the given clock: virtual time moves, nothing really sleeps
    (on real timers this test would take 30 s)."""
    vt = VirtualTime()
    tried_at: list[float] = []

    async def call(i: int) -> str:
        if i == 0:
            tried_at.append(vt())
            if len(tried_at) == 1:
                raise RequestError("later", status_code=503, headers={"retry-after": "30"})
        await vt.sleep(0.001)
        return f"answer {i}"

    sink = _Sink(3)
    await run_batch(call, range(3), sink, worker_num=2, classify=_classifier(), clock=vt, sleep=vt.sleep)
    assert sink.results == ["answer 0", "answer 1", "answer 2"] and sink.order[-1] == 0
    assert len(tried_at) == 2 and tried_at[1] - tried_at[0] >= 30.0
    assert max(vt.sleeps) == pytest.approx(30.0, abs=0.01)  # the re-queued input's wake-up, on the given sleep
