"""Admission control and the async face of every engine.

Each engine has a :class:`Gate`: ``slots`` requests run at once, ``queue`` more may wait, and
anything beyond is refused at once with :class:`EngineBusy` (the routes answer the platform's
rate-limit error), so memory and threads stay bounded under any load.

The platform talks to engines only through ``generate`` (:class:`~.api.Engine`). Engines that
block (transformers in-process) are wrapped by :class:`ThreadedChat`, which runs them on a
thread of their own, never on the shared pool.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from qfnb.local.engines.ask import Ask, ChatAsk, TextAsk
from qfnb.local.engines.base import CannotServe, ChatEngine, Delta, Embedder, reached, text_turns
from qfnb.local.engines.call_state import calls, progress

T = TypeVar("T")


class EngineBusy(RuntimeError):
    """The engine's slots and queue are full; retry after ``retry_after`` seconds."""

    def __init__(self, name: str, limit: int, retry_after: float = 1.0) -> None:
        self.name, self.limit, self.retry_after = name, limit, retry_after
        super().__init__(f"{name} is busy: {limit} requests are running or queued; retry in about "
                         f"{retry_after:.0f} s")


class Gate:
    """At most ``slots + queue`` requests admitted; counts what runs and waits (thread-safe), and
    each admitted request as a model call (:mod:`qfnb.local.engines.call_state.calls`)."""

    def __init__(self, name: str, slots: int, queue: int) -> None:
        if slots < 1 or queue < 0:
            raise ValueError(f"slots must be >= 1 and queue >= 0, got {slots}, {queue}")
        self.name, self.slots, self.queue = name, slots, queue
        self._admitted = 0
        self._lock = threading.Lock()
        self._watchers: tuple[Callable[[], None], ...] = ()

    def watch(self, wake: Callable[[], None]) -> None:
        """Call ``wake()`` (from any thread) whenever a request is admitted or leaves, so a batch
        job waits for a free slot on this event instead of polling."""
        with self._lock:
            self._watchers = (*self._watchers, wake)

    def unwatch(self, wake: Callable[[], None]) -> None:
        with self._lock:
            self._watchers = tuple(w for w in self._watchers if w is not wake)

    def _changed(self) -> None:
        for wake in self._watchers:
            wake()

    @property
    def admitted(self) -> int:
        return self._admitted

    @property
    def busy(self) -> int:
        return min(self._admitted, self.slots)

    @property
    def queued(self) -> int:
        return max(0, self._admitted - self.slots)

    @contextlib.asynccontextmanager
    async def turn(self, lane: str | None = None) -> AsyncIterator[int | None]:
        """Hold a place for the block (a :class:`~.lanes.LaneGate` queues by ``lane`` and yields an
        engine slot; a plain gate only counts, and yields None)."""
        with self.admit():
            yield None

    @contextmanager
    def admit(self, cap: int | None = None, retry_after: Callable[[], float] = lambda: 1.0) -> Iterator[None]:
        """Hold a place for one request (of at most ``cap``, default ``slots + queue``), or raise
        :class:`EngineBusy` at once."""
        cap = self.slots + self.queue if cap is None else cap
        with self._lock:
            full = self._admitted >= cap
            if not full:
                self._admitted += 1
        if full:
            raise EngineBusy(self.name, cap, retry_after())
        self._changed()
        calls.count(self.name)
        call = progress.current()
        if call is not None:
            call.on_slot()
        try:
            yield
        finally:
            with self._lock:
                self._admitted -= 1
            self._changed()


_DONE = object()


class ThreadedChat:
    """A blocking :class:`ChatEngine` as an :class:`~.api.Engine`, behind a gate; each admitted
    request runs on a thread of its own (the engine serialises generation itself), never on a
    shared pool. It renders text turns only: it cannot call tools, follow a schema or report
    logprobs.

    Closing the async iterator (the client went away) stops the blocking one between two
    tokens, so an abandoned request stops generating.
    """

    can_call_tools = False

    def __init__(self, engine: ChatEngine, *, queue: int = 32) -> None:
        self.engine, self.name = engine, engine.name
        self.gate = Gate(self.name, 1, queue)

    def generate(self, ask: Ask) -> AsyncIterator[Delta]:
        if isinstance(ask, TextAsk):
            prompt, sampling = ask.prompt, ask.sampling
            return self._run(lambda: iter(self.engine.complete(prompt, sampling=sampling)))
        if not ask.plain:
            raise CannotServe(f"{self.name} answers text turns only (no tools, response format, logprobs or "
                             "penalties): serve it with llama.cpp for those")
        turns, sampling = text_turns(ask.messages), ask.sampling
        return self._run(lambda: iter(self.engine.chat(turns, sampling=sampling)))

    def resume(self, ask: ChatAsk, text: str) -> AsyncIterator[Delta] | None:
        """None: a text-only engine answers no schema."""
        return None

    async def count_tokens(self, ask: Ask) -> int:
        raise CannotServe(f"{self.name} runs in-process (transformers): the platform counts tokens only for "
                          "llama.cpp models")

    async def token_logprobs(self, tokens: Sequence[int], positions: Sequence[int]) -> list[float]:
        raise CannotServe(f"{self.name} runs in-process (transformers): the platform scores given tokens only "
                          "on llama.cpp models")

    async def answer_logprob(self, messages: Sequence[dict[str, str]], answer: str) -> tuple[float, int]:
        """The engine's own scoring of a given answer, on a thread, behind the gate."""
        turns = text_turns(list(messages))
        with self.gate.admit():
            return await asyncio.to_thread(self.engine.answer_logprob, turns, answer)

    async def _run(self, start: Callable[[], Iterator[Delta]]) -> AsyncIterator[Delta]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[Any, BaseException | None]] = asyncio.Queue()
        stop = threading.Event()

        def put(item: Any, exc: BaseException | None = None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
                loop.call_soon_threadsafe(queue.put_nowait, (item, exc))

        def produce() -> None:
            try:
                iterator = start()
                try:
                    for item in iterator:
                        if stop.is_set():
                            break
                        put(item)
                finally:
                    if isinstance(iterator, Generator):
                        iterator.close()
                put(_DONE)
            except BaseException as exc:  # delivered to the caller
                put(_DONE, exc)

        with self.gate.admit():
            threading.Thread(target=produce, name=f"qfnb-engine-{self.name}", daemon=True).start()
            reached()  # the engine has the request from here on
            try:
                while True:
                    item, exc = await queue.get()
                    if exc is not None:
                        raise exc
                    if item is _DONE:
                        return
                    yield item
            finally:
                stop.set()

    def close(self) -> None:
        self.engine.close()


class _EmbedCall:
    """One ``aembed`` call while its texts are in the engine's batches."""

    __slots__ = ("failed", "future", "left", "loop", "texts", "tokens", "vectors")

    def __init__(self, texts: list[str], future: asyncio.Future[Any], loop: asyncio.AbstractEventLoop) -> None:
        self.texts, self.future, self.loop = texts, future, loop
        self.vectors: list[list[float]] = [[] for _ in texts]
        self.left, self.tokens, self.failed = len(texts), 0.0, False


class BatchingEmbedder:
    """An :class:`Embedder` whose calls are packed into batches of the engine's own size.

    The texts of calls that arrive while the engine is busy wait in arrival order and are taken
    ``embedder.batch_texts`` at a time: small concurrent calls are merged into one engine call,
    a call larger than that is split over several (so its memory and each engine call's time stay
    bounded), and ``embedder.parallel`` engine calls run at once, each on a thread of this
    embedder's own pool. A call's tokens are its texts' (:meth:`Embedder.embed_each`).
    """

    def __init__(self, embedder: Embedder, *, queue: int = 64) -> None:
        self.embedder, self.name = embedder, embedder.name
        self.batch_texts, self.parallel = max(1, embedder.batch_texts), max(1, embedder.parallel)
        self.gate = Gate(self.name, self.parallel, queue)
        self._pending: collections.deque[tuple[_EmbedCall, int]] = collections.deque()  # a call, its next text
        self._running = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(self.parallel, thread_name_prefix=f"qfnb-embed-{self.name}")

    async def aembed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        loop = asyncio.get_running_loop()
        call = _EmbedCall(list(texts), loop.create_future(), loop)
        with self.gate.admit():
            if not call.texts:
                raise ValueError("texts must be a non-empty list of strings")
            with self._lock:
                self._pending.append((call, 0))
                start = self._running < self.parallel
                self._running += start
            if start:
                self._pool.submit(self._drain)
            return await call.future  # type: ignore[no-any-return]

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """The blocking face (for threads), through the same batches."""
        return run_blocking(lambda: self.aembed(texts))

    def _take(self) -> list[tuple[_EmbedCall, int, int]]:
        """The next batch: up to ``batch_texts`` texts from the oldest waiting calls (under the lock)."""
        batch: list[tuple[_EmbedCall, int, int]] = []
        size = 0
        while self._pending and size < self.batch_texts:
            call, first = self._pending[0]
            if call.failed:  # an earlier part failed: its caller has the error already
                self._pending.popleft()
                continue
            end = min(len(call.texts), first + self.batch_texts - size)
            batch.append((call, first, end))
            size += end - first
            if end == len(call.texts):
                self._pending.popleft()
            else:
                self._pending[0] = (call, end)
        return batch

    def _drain(self) -> None:
        """Run batches until none waits (one of at most ``parallel`` drains, on the embedder's pool)."""
        while True:
            with self._lock:
                batch = self._take()
                if not batch:
                    self._running -= 1
                    return
            self._run(batch)

    def _run(self, batch: list[tuple[_EmbedCall, int, int]]) -> None:
        texts = [t for call, first, end in batch for t in call.texts[first:end]]
        try:
            vectors, counts = self.embedder.embed_each(texts)
            if len(vectors) != len(texts):
                raise RuntimeError(f"{self.name} answered {len(vectors)} vectors for {len(texts)} texts")
        except Exception as exc:  # every caller in the batch sees the failure
            with self._lock:
                for call, _, _ in batch:
                    if not call.failed:
                        call.failed = True
                        call.loop.call_soon_threadsafe(settle, call.future, None, exc)
            return
        at = 0
        with self._lock:
            for call, first, end in batch:
                call.vectors[first:end] = vectors[at:at + end - first]
                call.tokens += sum(counts[at:at + end - first])
                at += end - first
                call.left -= end - first
                if call.left == 0 and not call.failed:
                    answer = (call.vectors, max(len(call.texts), round(call.tokens)))
                    call.loop.call_soon_threadsafe(settle, call.future, answer, None)


def settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    """``future``'s result (or exception), unless it is settled already (run on its own loop)."""
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


_background: asyncio.AbstractEventLoop | None = None
_background_lock = threading.Lock()


def run_blocking(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``make()`` on the platform's background event loop and wait for it (for threads such
    as evaluations that use the async engines)."""
    global _background
    with _background_lock:
        if _background is None or _background.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="qfnb-engine-loop", daemon=True).start()
            _background = loop
        loop = _background
    return asyncio.run_coroutine_threadsafe(make(), loop).result()
