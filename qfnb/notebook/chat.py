"""Chat for ``%%qfchat``: sessions, the streaming runner and the answer display (no IPython here).

The runner streams each requested model in a worker thread into a :class:`ChatAnswer`; the
caller's thread (the kernel's main thread) redraws one display, throttled, until all answers are
finished. Nothing here prints or displays: rendering goes through the ``on_update`` callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from qfnb.notebook import _fmt, _theme
from qfnb.notebook.sessions import ChatSession, SessionHistory, SessionList, SessionStore

__all__ = ["ChatAnswer", "ChatBackend", "ChatDelta", "ChatRequest", "ChatSession", "ResourcesBackend",
           "SessionHistory", "SessionList", "SessionStore", "render_answers", "run_chat"]

log = logging.getLogger("qfnb.notebook.chat")


@dataclass(frozen=True)
class ChatRequest:
    """One model call. ``messages`` already include the session history and the new prompt."""

    messages: list[dict[str, str]]
    model: str | None = None
    endpoint: str | None = None
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    stream: bool = True
    name: str | None = None  # what the footer calls the model when ``model`` is None (the default's name)

    @property
    def label(self) -> str:
        return self.model or self.name or (f"endpoint:{self.endpoint}" if self.endpoint else "default model")


@dataclass
class ChatDelta:
    """A piece of an answer: new text, and the usage / raw response when the backend has them."""

    text: str
    usage: dict[str, Any] | None = None
    response: Any = None
    model: str | None = None  # the model that answers, once the backend knows it


class ChatBackend(Protocol):
    """``stream`` may return an iterator with a ``cancel()`` method: called (from another thread)
    on Kernel -> Interrupt, it must end the iteration and close the connection."""

    def stream(self, request: ChatRequest) -> Iterable[ChatDelta]: ...


_END = object()


class _PlatformStream:
    """Iterates the deltas of one call pumped on qfnb's loop; ``cancel()`` cancels the pump's task,
    which closes the HTTP stream (the server sees the client go and stops generating)."""

    def __init__(self, request: ChatRequest) -> None:
        self.request = request
        self._queue: queue.Queue[Any] = queue.Queue()
        self._future: Any = None
        self._cancelled = False

    def __iter__(self) -> Iterator[ChatDelta]:
        from qfnb._core.runtime import sync

        self._future = sync.submit(self._pump())
        while True:
            item = self._queue.get()
            if item is _END or self._cancelled:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def cancel(self) -> None:
        self._cancelled = True
        if self._future is not None:
            self._future.cancel()
        self._queue.put(_END)

    async def _pump(self) -> None:
        from qfnb.resources import ChatCompletion

        req = self.request
        kwargs: dict[str, Any] = {}
        if req.system:
            kwargs["system"] = req.system
        if req.temperature is not None:
            kwargs["temperature"] = req.temperature
        if req.max_tokens is not None:
            kwargs["max_output_tokens"] = req.max_tokens
        result: Any = None
        try:
            res = ChatCompletion(model=req.model, endpoint=req.endpoint)
            target = await res.aresolve()
            if target.model and not req.endpoint:
                self._queue.put(ChatDelta(text="", model=target.model))
            result = await res.ado(messages=req.messages, stream=req.stream, **kwargs)
            if req.stream:
                async for resp in result:
                    self._queue.put(_delta(resp))
            else:
                self._queue.put(_delta(result))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._queue.put(exc)
        finally:
            close = getattr(result, "aclose", None)
            if close is not None:
                with contextlib.suppress(BaseException):
                    await close()
            self._queue.put(_END)


def _delta(resp: Any) -> ChatDelta:
    body = getattr(resp, "body", None) or {}
    return ChatDelta(text=body.get("result") or "", usage=body.get("usage"), response=resp)


class ResourcesBackend:
    """The real backend: :class:`qfnb.resources.ChatCompletion` (streaming or not)."""

    def stream(self, request: ChatRequest) -> Iterable[ChatDelta]:
        return _PlatformStream(request)

    def default_model(self) -> str | None:
        """The platform's default chat model's name (no network: the catalog and the config)."""
        from qfnb.resources import ChatCompletion

        try:
            return ChatCompletion()._default_model()
        except Exception:  # a broken config shows up on the call itself
            return None

    def engine_state(self, request: ChatRequest, label: str) -> Any:
        """The local platform's engine for this request (loading or not); None when unknown."""
        from qfnb.notebook.loading import local_engine_state

        return local_engine_state((request.model, request.endpoint, request.name, label))


@dataclass
class ChatAnswer:
    """The (possibly still streaming) answer of one model; ``str(answer)`` is its text."""

    model: str
    text: str = ""
    usage: dict[str, Any] | None = None
    response: Any = None
    error: BaseException | None = None
    latency: float | None = None
    first_token: float | None = None
    done: bool = False
    interrupted: bool = False
    engine: Any = None  # the platform's state of the answering engine while waiting (loading.EngineState)
    started: float = field(default_factory=time.perf_counter, repr=False)
    responses: list[Any] = field(default_factory=list, repr=False)

    def __str__(self) -> str:
        return self.text

    @property
    def footer(self) -> str:
        parts = [self.model]
        u = self.usage or {}
        if u.get("total_tokens") is not None:
            parts.append(
                f"{u.get('total_tokens')} tokens ({u.get('prompt_tokens', '?')} prompt + "
                f"{u.get('completion_tokens', '?')} completion)"
            )
        if self.latency is not None and (self.done or self.text):
            first = f", first token {self.first_token:.2f} s" if self.first_token is not None else ""
            parts.append(f"{self.latency:.2f} s{first}")
        if self.interrupted:
            parts.append("interrupted (partial answer)" if self.text else "interrupted")
        elif not self.done and not self.text:
            parts = self._waiting(parts)
        elif not self.done:
            parts.append("streaming…")
        return " · ".join(parts)

    def _waiting(self, parts: list[str]) -> list[str]:
        waited = time.perf_counter() - self.started
        engine = self.engine
        if engine is not None and engine.state in ("starting", "failed"):
            since = time.time() - engine.since if engine.since is not None else waited
            what = "loading" if engine.state == "starting" else "failed to load"
            if engine.model.lower() == self.model.lower():
                parts = parts[1:]  # "loading Qwen… · 4 s" names the model once
            return [*parts, f"{what} {engine.model}", f"{max(since, 0.0):.0f} s"]
        hint = " (the model may be loading)" if engine is None and waited >= 2 else ""
        return [*parts, f"waiting for the first token · {waited:.0f} s{hint}"]

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict[str, str], dict[str, Any]]:
        return render_answers([self])


def _md_to_html(text: str) -> str:
    try:
        import mistune
    except ImportError:  # pragma: no cover - mistune comes with nbconvert / jupyterlab
        return f'<div style="white-space: pre-wrap">{_fmt.esc(text)}</div>'
    return str(mistune.create_markdown(escape=True)(text))  # raw HTML in answers is escaped


def error_line(answer: ChatAnswer) -> str:
    err = answer.error
    return f"{type(err).__name__}: {err}" if err is not None else ""


def render_answers(answers: Sequence[ChatAnswer]) -> tuple[dict[str, str], dict[str, Any]]:
    """A mimebundle (text/plain always; Markdown for one answer, HTML columns for several)."""
    meta = {"qfnb": {"models": [a.model for a in answers]}}
    plain_parts = []
    for a in answers:
        head = f"[{a.model}]\n" if len(answers) > 1 else ""
        err = f"\n[error] {error_line(a)}" if a.error is not None else ""
        plain_parts.append(f"{head}{a.text}{err}\n-- {a.footer}")
    data = {"text/plain": "\n\n".join(plain_parts)}
    if len(answers) == 1:
        a = answers[0]
        cursor = " ▌" if not a.done else ""
        data["text/markdown"] = f"{a.text}{cursor}\n\n<sub>{_fmt.esc(a.footer)}</sub>"
        return data, meta
    cols = []
    for a in answers:
        body = _md_to_html(a.text) if a.text else ("<i>waiting…</i>" if not a.done else "")
        if a.error is not None:
            body += f'<pre class="qfnb-error" style="color:{_theme.ERROR}">{_fmt.esc(error_line(a))}</pre>'
        cols.append(
            f'<div style="flex:1;min-width:0;border:1px solid {_theme.BORDER};border-radius:6px;padding:6px 10px;'
            f'color:{_theme.TEXT}"><b>{_fmt.esc(a.model)}</b>{body}'
            f'<div class="qfnb-footer" style="color:{_theme.TEXT_MUTED};font-size:85%">{_fmt.esc(a.footer)}</div></div>'
        )
    data["text/html"] = f'<div class="qfnb-chat" style="display:flex;gap:10px">{"".join(cols)}</div>'
    return data, meta


def _run_one(
    backend: ChatBackend,
    request: ChatRequest,
    answer: ChatAnswer,
    changed: threading.Event,
    cancel: threading.Event,
    streams: list[Any],
) -> None:
    from qfnb.resources.inference.accumulator import ChatAccumulator  # the SDK's modules: on first use

    t0 = answer.started
    try:
        stream = backend.stream(request)
        streams.append(stream)
        if cancel.is_set():
            return
        acc = ChatAccumulator()
        for delta in stream:
            if cancel.is_set():
                break
            if delta.model:
                answer.model = delta.model
            if acc.add(delta.text, delta.usage) and answer.first_token is None:
                answer.first_token = time.perf_counter() - t0
            answer.text, answer.usage = acc.text, acc.usage or answer.usage
            if delta.response is not None:
                answer.response = delta.response
                answer.responses.append(delta.response)
            answer.latency = time.perf_counter() - t0
            changed.set()
    except BaseException as exc:  # shown to the user by the caller, never swallowed
        if cancel.is_set():
            return
        answer.error = exc
        log.debug("chat with %s failed", request.label, exc_info=True)
    finally:
        if not cancel.is_set():
            answer.latency = time.perf_counter() - t0
            answer.done = True
        changed.set()


def cancel_streams(streams: Sequence[Any]) -> None:
    """Close every stream that can be closed (``cancel()``): the server stops generating."""
    for stream in list(streams):
        cancel = getattr(stream, "cancel", None)
        if cancel is not None:
            try:
                cancel()
            except Exception:  # closing is best effort; the answer is already final
                log.debug("cancelling a chat stream failed", exc_info=True)


def run_chat(
    backend: ChatBackend,
    requests: Sequence[ChatRequest],
    on_update: Callable[[list[ChatAnswer]], None],
    *,
    interval: float = 0.1,
) -> list[ChatAnswer]:
    """Run the requests concurrently; call ``on_update`` at most every ``interval`` s and once at the end.

    ``on_update`` runs in the calling thread only. ``KeyboardInterrupt`` (Kernel -> Interrupt)
    closes the streams, marks the unfinished answers ``interrupted`` (their text so far is kept),
    draws them once more and raises :class:`~qfnb.notebook.errors.QfnbInterrupted` (one line).
    While no token has come, the footer's waiting time is redrawn every second.
    """
    from qfnb.notebook.errors import QfnbInterrupted

    answers = [ChatAnswer(model=r.label) for r in requests]
    changed, cancel, watched = threading.Event(), threading.Event(), threading.Event()
    streams: list[Any] = []
    pool = ThreadPoolExecutor(max_workers=len(requests), thread_name_prefix="qfchat")
    futures = [pool.submit(_run_one, backend, r, a, changed, cancel, streams)
               for r, a in zip(requests, answers, strict=True)]
    last = time.perf_counter()
    probe = getattr(backend, "engine_state", None)
    if callable(probe):
        from qfnb.notebook import loading

        loading.watch(probe, requests, answers, changed, watched)
    try:
        while not all(f.done() for f in futures):
            changed.wait(timeout=interval)
            waiting = any(not a.done and not a.text for a in answers) and time.perf_counter() - last >= 1.0
            if changed.is_set() or waiting:
                changed.clear()
                on_update(answers)
                last = time.perf_counter()
                time.sleep(interval)  # throttle: at most one redraw per interval
    except KeyboardInterrupt:
        cancel.set()
        cancel_streams(streams)
        for a in answers:
            if not a.done:
                a.interrupted, a.done = True, True
                a.latency = time.perf_counter() - a.started
        on_update(answers)
        interrupted = QfnbInterrupted("the answer so far is kept above")
        interrupted.answers = answers
        raise interrupted from None
    finally:
        pool.shutdown(wait=not cancel.is_set())
        watched.set()  # ends the loading watcher
    on_update(answers)
    return answers
