"""qfnb's own loop (uvloop where installed, asyncio's when declined or absent) and the collector's
threshold a batch raises while it runs."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
from collections.abc import Iterator

import pytest

from qfnb._core.runtime import collector, sync
from qfnb._core.runtime.collector import BATCH_GC_THRESHOLD, raised_gc_threshold


@pytest.fixture()
def default_threshold() -> Iterator[tuple[int, ...]]:
    """CPython's thresholds for the test, whatever the suite set; put back after."""
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        yield gc.get_threshold()
    finally:
        gc.set_threshold(*before)


def test_the_threshold_is_raised_inside_and_put_back_after(default_threshold: tuple[int, ...]) -> None:
    with raised_gc_threshold():
        assert gc.get_threshold() == (BATCH_GC_THRESHOLD, *default_threshold[1:])
    assert gc.get_threshold() == default_threshold


def test_batches_at_once_share_one_raise_and_the_last_puts_it_back(default_threshold: tuple[int, ...]) -> None:
    first, second = raised_gc_threshold(), raised_gc_threshold()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert gc.get_threshold()[0] == BATCH_GC_THRESHOLD  # the second batch still runs
    second.__exit__(None, None, None)
    assert gc.get_threshold() == default_threshold


def test_a_threshold_set_meanwhile_is_kept(default_threshold: tuple[int, ...]) -> None:
    with raised_gc_threshold():
        gc.set_threshold(123, 4, 5)  # the caller's own choice, made while the batch ran
    assert gc.get_threshold() == (123, 4, 5)


@pytest.mark.parametrize("setting", [(2 * BATCH_GC_THRESHOLD, 10, 10), (0, 10, 10)])
def test_a_higher_threshold_or_the_collector_off_is_left_alone(default_threshold: tuple[int, ...],
                                                               setting: tuple[int, int, int]) -> None:
    gc.set_threshold(*setting)
    with raised_gc_threshold():
        assert gc.get_threshold() == setting
    assert gc.get_threshold() == setting


def test_the_raise_ends_with_a_failing_block(default_threshold: tuple[int, ...]) -> None:
    with pytest.raises(RuntimeError), raised_gc_threshold():
        raise RuntimeError("the batch failed")
    assert gc.get_threshold() == default_threshold
    assert collector._holders == 0


def test_a_batch_runs_with_the_raised_threshold(default_threshold: tuple[int, ...]) -> None:
    from qfnb.resources.inference.batching.engine import ListSink, run_batch

    seen: list[int] = []

    async def call(item: int) -> int:
        seen.append(gc.get_threshold()[0])
        await asyncio.sleep(0)
        return item * 2

    sink = ListSink(20)
    asyncio.run(run_batch(call, range(20), sink, worker_num=4))
    assert sink.results == [i * 2 for i in range(20)]
    assert seen == [BATCH_GC_THRESHOLD] * 20
    assert gc.get_threshold() == default_threshold


def _loop_module(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    loop = sync.new_event_loop()
    try:
        return type(loop).__module__
    finally:
        loop.close()


def test_qfnbs_loop_is_uvloops_where_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop")
    monkeypatch.delenv(sync.EVENT_LOOP_VAR, raising=False)
    assert _loop_module({}, monkeypatch).startswith("uvloop")


def test_qfnbs_loop_is_asyncios_when_declined_or_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _loop_module({sync.EVENT_LOOP_VAR: "asyncio"}, monkeypatch).startswith("asyncio")
    monkeypatch.delenv(sync.EVENT_LOOP_VAR)
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    assert _loop_module({}, monkeypatch).startswith("asyncio")


def test_the_sync_shell_runs_on_its_loop_from_a_thread_with_a_running_loop() -> None:
    """As inside a Jupyter kernel: the caller's thread runs its own (asyncio) loop, qfnb's calls run
    on qfnb's thread, and the caller's context variables reach them."""
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="")

    async def where() -> tuple[str, str]:
        return threading.current_thread().name, var.get()

    async def cell() -> tuple[str, str]:  # a running loop in this thread, as a kernel's cell has
        var.set("the caller's")
        return sync.run(where(), context=contextvars.copy_context())

    assert asyncio.run(cell()) == ("qfnb-loop", "the caller's")
