"""The ``%%qfchat`` runner: every stream a coroutine on qfnb's loop, one queue to the kernel thread.

One coroutine (:func:`_drive`) runs on qfnb's background loop (:mod:`qfnb._core.runtime.sync`):
a task per requested model reads that model's async stream into its :class:`CellAnswer`, and
one more task asks the local platform whether a waiting model is loading. Each change puts a
token on ONE :class:`queue.Queue`; the caller's thread (the kernel's main thread) blocks on that
queue, redraws at most every ``interval`` s, and is the only thread that renders.

Kernel -> Interrupt raises ``KeyboardInterrupt`` in the kernel thread while it waits on the
queue: the driver is cancelled (which closes every HTTP stream: the server stops generating),
the kernel thread waits for the driver's last token, marks the unfinished answers
``interrupted`` and draws them once more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import time
from collections.abc import Callable, Sequence

from qfnb._core.runtime import sync
from qfnb.notebook.chat import loading
from qfnb.notebook.chat.answer import CellAnswer, CellChatRequest, ChatBackend
from qfnb.notebook.errors import QfnbInterrupted
from qfnb.resources.inference.shapes.accumulator import ChatAccumulator

__all__ = ["CANCEL_GRACE", "run_chat"]

log = logging.getLogger("qfnb.notebook.chat.answer")

#: seconds the kernel thread waits, after an interrupt, for the streams to close
CANCEL_GRACE = 5.0
_CHANGED, _END = "changed", "end"


async def _stream_one(backend: ChatBackend, request: CellChatRequest, answer: CellAnswer,
                      notify: Callable[[], None]) -> None:
    t0 = answer.started
    acc = ChatAccumulator()
    try:
        async for delta in backend.stream(request):
            if delta.model:
                answer.model = delta.model
            if acc.add(delta.text, delta.usage) and answer.first_token is None:
                answer.first_token = time.perf_counter() - t0
            answer.text, answer.usage = acc.text, acc.usage or answer.usage
            if delta.response is not None:
                answer.response = delta.response
                answer.responses.append(delta.response)
            answer.latency = time.perf_counter() - t0
            notify()
    except Exception as exc:  # shown to the user by the caller (a cancel passes: the kernel thread marks it)
        answer.error = exc
        log.debug("chat with %s failed", request.label, exc_info=True)
    answer.latency = time.perf_counter() - t0
    answer.done = True
    notify()


async def _watch_loading(probe: Callable[[CellChatRequest, str], object], requests: Sequence[CellChatRequest],
                         answers: Sequence[CellAnswer], notify: Callable[[], None], *,
                         first: float, interval: float) -> None:
    """Set ``answer.engine`` while answers wait for their first token (see :mod:`loading`)."""
    await asyncio.sleep(first)
    while pending := [i for i, a in enumerate(answers) if not a.done and not a.text]:
        for i in pending:
            try:  # a blocking probe (one short local request) runs off the loop
                state = await asyncio.to_thread(probe, requests[i], answers[i].model)
            except Exception:  # the footer is a nicety: never break the chat
                log.debug("engine status probe failed", exc_info=True)
                state = None
            if state != answers[i].engine:
                answers[i].engine = state
                notify()
        await asyncio.sleep(interval)


async def _drive(backend: ChatBackend, requests: Sequence[CellChatRequest], answers: Sequence[CellAnswer],
                 updates: queue.Queue[str]) -> None:
    def notify() -> None:
        updates.put(_CHANGED)

    watcher = asyncio.ensure_future(_watch_loading(backend.engine_state, requests, answers, notify,
                                                   first=loading.FIRST_LOOK, interval=loading.INTERVAL))
    try:
        await asyncio.gather(*(_stream_one(backend, r, a, notify) for r, a in zip(requests, answers, strict=True)))
    finally:
        watcher.cancel()
        with contextlib.suppress(BaseException):
            await watcher
        updates.put(_END)


def _wait(updates: queue.Queue[str], timeout: float | None) -> str | None:
    try:
        return updates.get(timeout=timeout)
    except queue.Empty:
        return None


def run_chat(
    backend: ChatBackend,
    requests: Sequence[CellChatRequest],
    on_update: Callable[[list[CellAnswer]], None],
    *,
    interval: float = 0.1,
) -> list[CellAnswer]:
    """Run the requests concurrently; call ``on_update`` at most every ``interval`` s and once at the end.

    ``on_update`` runs in the calling thread only. ``KeyboardInterrupt`` (Kernel -> Interrupt)
    closes the streams, marks the unfinished answers ``interrupted`` (their text so far is kept),
    draws them once more and raises :class:`~qfnb.notebook.errors.QfnbInterrupted` (one line).
    While no token has come, the footer's waiting time is redrawn every second.
    """
    answers = [CellAnswer(model=r.label, context=r.context) for r in requests]
    updates: queue.Queue[str] = queue.Queue()
    future = sync.submit(_drive(backend, requests, answers, updates))
    ended = False
    try:
        while not ended:
            item = _wait(updates, 1.0)  # no token within a second: redraw the waiting footer
            ended = item == _END
            if item is None and not any(not a.done and not a.text for a in answers):
                continue
            on_update(answers)
            pause = time.perf_counter() + interval  # throttle: gather what comes until the next redraw
            while not ended and (left := pause - time.perf_counter()) > 0:
                ended = _wait(updates, left) == _END
    except KeyboardInterrupt:
        future.cancel()  # cancels the driver's task on the loop: every HTTP stream closes
        deadline = time.perf_counter() + CANCEL_GRACE
        while not ended and (left := deadline - time.perf_counter()) > 0:
            ended = _wait(updates, left) == _END
        for a in answers:
            if not a.done:
                a.interrupted, a.done = True, True
                a.latency = time.perf_counter() - a.started
        on_update(answers)
        interrupted = QfnbInterrupted("the answer so far is kept above")
        interrupted.answers = answers
        raise interrupted from None
    future.result()  # a bug in the driver itself surfaces here (errors of a model are in its answer)
    on_update(answers)
    return answers
