"""Admission control and the async face of every engine.

Each engine has a :class:`Gate`: ``slots`` requests run at once, ``queue`` more may wait, and
anything beyond is refused at once with :class:`EngineBusy` (the routes answer the platform's
rate-limit error), so memory and threads stay bounded under any load.

Routes talk to engines only through :class:`AsyncChat` (``achat`` / ``acomplete`` yielding
:class:`Delta` s). Engines that block (transformers in-process) are wrapped by
:class:`ThreadedChat`, which runs them on a thread of their own, never on the shared pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from qfnb.local.engines import calls
from qfnb.local.engines.base import ChatEngine, Delta, Embedder

T = TypeVar("T")


class EngineBusy(RuntimeError):
    """The engine's slots and queue are full; retry after ``retry_after`` seconds."""

    def __init__(self, name: str, limit: int, retry_after: float = 1.0) -> None:
        self.name, self.limit, self.retry_after = name, limit, retry_after
        super().__init__(f"{name} is busy: {limit} requests are running or queued; retry in about "
                         f"{retry_after:.0f} s")


class Gate:
    """At most ``slots + queue`` requests admitted; counts what runs and waits (thread-safe), and
    each admitted request as a model call (:mod:`qfnb.local.engines.calls`)."""

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

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold a place for one request, or raise :class:`EngineBusy` at once."""
        with self._lock:
            if self._admitted >= self.slots + self.queue:
                raise EngineBusy(self.name, self.slots + self.queue)
            self._admitted += 1
        self._changed()
        calls.count(self.name)
        try:
            yield
        finally:
            with self._lock:
                self._admitted -= 1
            self._changed()


class AsyncChat(Protocol):
    """What the routes need from a chat model."""

    name: str
    gate: Gate

    def achat(self, messages: list[dict[str, Any]], *, system: str | None,
              params: dict[str, Any]) -> AsyncIterator[Delta]: ...

    def acomplete(self, prompt: str, *, params: dict[str, Any]) -> AsyncIterator[Delta]: ...


_DONE = object()


class SyncFace:
    """Blocking ``chat`` / ``complete`` for callers on plain threads (evaluations, scripts), over
    ``achat`` / ``acomplete`` and the same gate."""

    def achat(self, messages: list[dict[str, Any]], *, system: str | None,
              params: dict[str, Any]) -> AsyncIterator[Delta]:
        raise NotImplementedError

    def acomplete(self, prompt: str, *, params: dict[str, Any]) -> AsyncIterator[Delta]:
        raise NotImplementedError

    def chat(self, messages: list[dict[str, Any]], *, system: str | None, params: dict[str, Any]) -> Iterator[Delta]:
        return iter(run_blocking(lambda: _collect(self.achat(messages, system=system, params=params))))

    def complete(self, prompt: str, *, params: dict[str, Any]) -> Iterator[Delta]:
        return iter(run_blocking(lambda: _collect(self.acomplete(prompt, params=params))))


async def _collect(deltas: AsyncIterator[Delta]) -> list[Delta]:
    return [d async for d in deltas]


class ThreadedChat(SyncFace):
    """A blocking :class:`ChatEngine` behind a gate; each admitted request runs on a thread of its
    own (the engine serialises generation itself), never on a shared pool.

    Closing the async iterator (the client went away) stops the blocking one between two
    tokens, so an abandoned request stops generating.
    """

    def __init__(self, engine: ChatEngine, *, queue: int = 32) -> None:
        self.engine, self.name = engine, str(getattr(engine, "name", type(engine).__name__))
        self.gate = Gate(self.name, 1, queue)

    def achat(self, messages: list[dict[str, Any]], *, system: str | None,
              params: dict[str, Any]) -> AsyncIterator[Delta]:
        return self._run(lambda: iter(self.engine.chat(messages, system=system, params=params)))

    def acomplete(self, prompt: str, *, params: dict[str, Any]) -> AsyncIterator[Delta]:
        return self._run(lambda: iter(self.engine.complete(prompt, params=params)))

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
                    close = getattr(iterator, "close", None)
                    if close is not None:
                        close()
                put(_DONE)
            except BaseException as exc:  # delivered to the caller
                put(_DONE, exc)

        with self.gate.admit():
            threading.Thread(target=produce, name=f"qfnb-engine-{self.name}", daemon=True).start()
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

    def __getattr__(self, name: str) -> Any:  # the wrapped engine's own helpers (render, tokenizer)
        if name.startswith("__") or name == "engine":
            raise AttributeError(name)
        return getattr(self.engine, name)


class BatchingEmbedder:
    """An :class:`Embedder` whose concurrent calls are answered together.

    Requests that arrive while a batch is computing are merged into the next one (up to
    ``max_texts`` texts), so many small concurrent calls cost about what one large call does.
    """

    def __init__(self, embedder: Embedder, *, max_texts: int = 256, queue: int = 64) -> None:
        self.embedder, self.name = embedder, str(getattr(embedder, "name", type(embedder).__name__))
        self.gate = Gate(self.name, 1, queue)
        self._max = max_texts
        self._pending: list[tuple[list[str], asyncio.Future[Any], asyncio.AbstractEventLoop]] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"qfnb-embed-{self.name}")

    async def aembed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self.gate.admit():
            with self._lock:
                self._pending.append((texts, future, loop))
                first = len(self._pending) == 1
            if first:
                self._pool.submit(self._drain)
            return await future  # type: ignore[no-any-return]

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """The blocking face (for threads), through the same batches."""
        return run_blocking(lambda: self.aembed(texts))

    def _drain(self) -> None:
        """Answer the oldest pending calls as one batch (runs on the embedder's own thread)."""
        with self._lock:
            batch: list[tuple[list[str], asyncio.Future[Any], asyncio.AbstractEventLoop]] = []
            size = 0
            while self._pending and (not batch or size + len(self._pending[0][0]) <= self._max):
                batch.append(self._pending.pop(0))
                size += len(batch[-1][0])
            if self._pending:
                self._pool.submit(self._drain)
        if not batch:
            return
        texts = [t for item in batch for t in item[0]]
        try:
            vectors, tokens = self.embedder.embed(texts)
        except Exception as exc:  # every caller in the batch sees the failure
            for _, future, loop in batch:
                loop.call_soon_threadsafe(_settle, future, None, exc)
            return
        chars = max(1, sum(len(t) for t in texts))
        start = 0
        for part, future, loop in batch:
            share = vectors[start:start + len(part)]
            start += len(part)
            part_tokens = max(len(part), round(tokens * sum(len(t) for t in part) / chars))
            loop.call_soon_threadsafe(_settle, future, (share, part_tokens), None)


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def as_async_chat(engine: Any) -> AsyncChat:
    """``engine`` itself if it is async (has ``achat``), else its :class:`ThreadedChat` (made once)."""
    if hasattr(engine, "achat"):
        return engine  # type: ignore[no-any-return]
    face = getattr(engine, "_qfnb_async", None)
    if face is None:
        face = ThreadedChat(engine)
        engine._qfnb_async = face
    return face


def as_async_embedder(embedder: Any) -> BatchingEmbedder:
    """``embedder`` itself if it batches already, else its :class:`BatchingEmbedder` (made once)."""
    if isinstance(embedder, BatchingEmbedder):
        return embedder
    face = getattr(embedder, "_qfnb_async", None)
    if face is None:
        face = BatchingEmbedder(embedder)
        embedder._qfnb_async = face
    return face


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


async def answer_all(engine: AsyncChat, prompts: Sequence[str], params: dict[str, Any]) -> list[str]:
    """Answers to ``prompts`` (one user turn each), as many at once as the engine has slots,
    waiting (not failing) while the engine is busy with other users."""
    limit = asyncio.Semaphore(engine.gate.slots)

    async def one(prompt: str) -> str:
        async with limit:
            while True:
                try:
                    parts = [d.text async for d in engine.achat([{"role": "user", "content": prompt}],
                                                                system=None, params=params)]
                    return "".join(parts).strip()
                except EngineBusy as exc:
                    await asyncio.sleep(exc.retry_after)

    return list(await asyncio.gather(*(one(p) for p in prompts)))
