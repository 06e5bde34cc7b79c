"""``poll_until``: one poll loop, driven here by an injected clock (no real waiting)."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Iterable
from typing import Any

import pytest

from qfnb._core.errors import InvalidArgumentError, RateLimitError, TimeoutError
from qfnb._core.runtime.poll import PollTimeoutError, apoll_until, poll_until
from qfnb.errors import QfnbError


class Clock:
    """A fake monotonic clock; ``sleep`` advances it and records the wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


class Task:
    """A remote task whose polls answer ``script`` in turn (an exception is raised)."""

    def __init__(self, script: Iterable[Any]) -> None:
        self.script = list(script)
        self.polls = 0
        self.stops = 0

    def read(self) -> Any:
        self.polls += 1
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, BaseException):
            raise item
        return {"state": item}

    async def aread(self) -> Any:
        return self.read()

    async def astop(self) -> None:
        self.stops += 1

    def stop(self) -> None:
        self.stops += 1


def _done(info: dict[str, Any]) -> bool:
    if info["state"] == "Failed":
        raise QfnbError("the task failed")
    return bool(info["state"] == "Done")


def _flaky() -> RateLimitError:
    return RateLimitError(18, "busy")


async def test_polls_at_the_interval_and_ticks_until_done() -> None:
    clock, task, seen = Clock(), Task(["Doing", "Doing", "Done"]), []
    got = await apoll_until(task.aread, _done, interval=5, clock=clock, sleep=clock.asleep,
                            tick=seen.append, stop=task.astop)
    assert got == {"state": "Done"}
    assert clock.waits == [5, 5] and seen == [{"state": "Doing"}] * 2
    assert task.stops == 0


async def test_failed_polls_are_retried_with_doubling_backoff() -> None:
    clock, task = Clock(), Task([_flaky(), _flaky(), "Doing", _flaky(), "Done"])
    got = await apoll_until(task.aread, _done, interval=10, backoff=1, retries=2, clock=clock, sleep=clock.asleep)
    assert got == {"state": "Done"}
    # 1, 2 for the first two failures; the success resets the count: 10, then 1 again
    assert clock.waits == [1, 2, 10, 1]


async def test_retries_run_out_and_the_error_propagates_without_stopping() -> None:
    clock, task = Clock(), Task([_flaky()])
    with pytest.raises(RateLimitError):
        await apoll_until(task.aread, _done, interval=1, retries=3, clock=clock, sleep=clock.asleep,
                          stop=task.astop)
    assert task.polls == 4 and task.stops == 0


async def test_permanent_errors_are_not_retried() -> None:
    clock, task = Clock(), Task([InvalidArgumentError(336003, "no such task")])
    with pytest.raises(InvalidArgumentError):
        await apoll_until(task.aread, _done, interval=1, retries=None, clock=clock, sleep=clock.asleep)
    assert task.polls == 1


async def test_a_failed_end_state_raises_and_is_not_stopped() -> None:
    clock, task = Clock(), Task(["Doing", "Failed"])
    with pytest.raises(QfnbError, match="failed"):
        await apoll_until(task.aread, _done, interval=1, clock=clock, sleep=clock.asleep, stop=task.astop)
    assert task.stops == 0


async def test_the_deadline_raises_qfnbs_timeout_and_stops_the_task() -> None:
    clock, task = Clock(), Task(["Doing"])
    with pytest.raises(TimeoutError, match=r"evaluation task 7 had not finished after 25 s .*state='Doing'") as info:
        await apoll_until(task.aread, _done, interval=10, timeout=25, what="evaluation task 7",
                          clock=clock, sleep=clock.asleep, stop=task.astop)
    assert isinstance(info.value, PollTimeoutError) and isinstance(info.value, builtins.TimeoutError)
    assert clock.waits == [10, 10, 5]  # the last wait is clipped to the deadline
    assert task.stops == 1


async def test_cancelling_the_wait_stops_the_task() -> None:
    task, polled = Task(["Doing"]), asyncio.Event()

    async def sleep(_: float) -> None:
        polled.set()
        await asyncio.Event().wait()  # until cancelled

    waiter = asyncio.create_task(apoll_until(task.aread, _done, interval=1, sleep=sleep, stop=task.astop))
    await polled.wait()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert task.stops == 1


async def test_a_tick_that_raises_aborts_and_stops_the_task() -> None:
    clock, task = Clock(), Task(["Doing"])

    def tick(_: Any) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await apoll_until(task.aread, _done, interval=1, clock=clock, sleep=clock.asleep, tick=tick, stop=task.astop)
    assert task.stops == 1 and task.polls == 1


async def test_a_failing_stop_does_not_hide_the_interruption() -> None:
    clock, task = Clock(), Task(["Doing"])

    async def stop() -> None:
        raise QfnbError("platform unreachable")

    with pytest.raises(PollTimeoutError):
        await apoll_until(task.aread, _done, interval=1, timeout=1, clock=clock, sleep=clock.asleep, stop=stop)


def test_the_blocking_twin_runs_the_same_loop() -> None:
    clock, task, seen = Clock(), Task([RuntimeError("daemon restarting"), "Doing", "Done"]), []
    got = poll_until(task.read, _done, interval=2, retries=None, retry_on=(Exception,), clock=clock,
                     sleep=clock.sleep, tick=seen.append)
    assert got == {"state": "Done"} and clock.waits == [2, 2] and seen == [{"state": "Doing"}]
    with pytest.raises(PollTimeoutError):
        poll_until(Task(["Doing"]).read, _done, interval=2, timeout=3, clock=clock, sleep=clock.sleep,
                   stop=task.stop)
    assert task.stops == 1


def test_qfnb_connection_and_timeout_errors_are_the_builtins_too() -> None:
    from qfnb import errors

    assert issubclass(errors.TimeoutError, builtins.TimeoutError)
    assert issubclass(errors.ConnectionError, builtins.ConnectionError)
    assert issubclass(errors.TimeoutError, errors.ConnectionError) and issubclass(errors.TimeoutError, QfnbError)
    assert errors.RequestTimeoutError is errors.TimeoutError
    assert str(errors.TimeoutError("GET /x timed out")) == "GET /x timed out"
