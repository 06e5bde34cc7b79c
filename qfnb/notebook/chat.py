"""Chat for ``%%qfchat``: sessions, the streaming runner and the answer display (no IPython here).

The runner streams each requested model in a worker thread into a :class:`ChatAnswer`; the
caller's thread (the kernel's main thread) redraws one display, throttled, until all answers are
finished. Nothing here prints or displays: rendering goes through the ``on_update`` callback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from qfnb.notebook import _fmt

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

    @property
    def label(self) -> str:
        return self.model or (f"endpoint:{self.endpoint}" if self.endpoint else "default model")


@dataclass
class ChatDelta:
    """A piece of an answer: new text, and the usage / raw response when the backend has them."""

    text: str
    usage: dict[str, Any] | None = None
    response: Any = None


class ChatBackend(Protocol):
    def stream(self, request: ChatRequest) -> Iterator[ChatDelta]: ...


class ResourcesBackend:
    """The real backend: :class:`qfnb.resources.ChatCompletion` (streaming or not)."""

    def stream(self, request: ChatRequest) -> Iterator[ChatDelta]:
        from qfnb.resources import ChatCompletion

        kwargs: dict[str, Any] = {}
        if request.system:
            kwargs["system"] = request.system
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.max_tokens is not None:
            kwargs["max_output_tokens"] = request.max_tokens
        client = ChatCompletion(model=request.model, endpoint=request.endpoint)
        result = client.do(messages=request.messages, stream=request.stream, **kwargs)
        chunks = result if request.stream else [result]
        for resp in chunks:
            body = getattr(resp, "body", None) or {}
            yield ChatDelta(text=body.get("result") or "", usage=body.get("usage"), response=resp)


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
        if self.latency is not None:
            first = f", first token {self.first_token:.2f} s" if self.first_token is not None else ""
            parts.append(f"{self.latency:.2f} s{first}")
        if not self.done:
            parts.append("streaming…")
        return " · ".join(parts)

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
            body += f'<pre class="qfnb-error" style="color:#b00020">{_fmt.esc(error_line(a))}</pre>'
        cols.append(
            '<div style="flex:1;min-width:0;border:1px solid #ddd;border-radius:6px;padding:6px 10px">'
            f"<b>{_fmt.esc(a.model)}</b>{body}"
            f'<div style="color:#666;font-size:85%">{_fmt.esc(a.footer)}</div></div>'
        )
    data["text/html"] = f'<div class="qfnb-chat" style="display:flex;gap:10px">{"".join(cols)}</div>'
    return data, meta


def _run_one(
    backend: ChatBackend, request: ChatRequest, answer: ChatAnswer, changed: threading.Event, cancel: threading.Event
) -> None:
    t0 = time.perf_counter()
    try:
        for delta in backend.stream(request):
            if cancel.is_set():
                break
            if delta.text:
                if answer.first_token is None:
                    answer.first_token = time.perf_counter() - t0
                answer.text += delta.text
            if delta.usage:
                answer.usage = dict(delta.usage)
            if delta.response is not None:
                answer.response = delta.response
                answer.responses.append(delta.response)
            answer.latency = time.perf_counter() - t0
            changed.set()
    except BaseException as exc:  # shown to the user by the caller, never swallowed
        answer.error = exc
        log.debug("chat with %s failed", request.label, exc_info=True)
    finally:
        answer.latency = time.perf_counter() - t0
        answer.done = True
        changed.set()


def run_chat(
    backend: ChatBackend,
    requests: Sequence[ChatRequest],
    on_update: Callable[[list[ChatAnswer]], None],
    *,
    interval: float = 0.1,
) -> list[ChatAnswer]:
    """Run the requests concurrently; call ``on_update`` at most every ``interval`` s and once at the end.

    ``on_update`` runs in the calling thread only. ``KeyboardInterrupt`` cancels the streams and
    is re-raised after the final update.
    """
    answers = [ChatAnswer(model=r.label) for r in requests]
    changed, cancel = threading.Event(), threading.Event()
    pool = ThreadPoolExecutor(max_workers=len(requests), thread_name_prefix="qfchat")
    futures = [pool.submit(_run_one, backend, r, a, changed, cancel) for r, a in zip(requests, answers, strict=True)]
    try:
        while not all(f.done() for f in futures):
            changed.wait(timeout=interval)
            if changed.is_set():
                changed.clear()
                on_update(answers)
                time.sleep(interval)  # throttle: at most one redraw per interval
    except KeyboardInterrupt:
        cancel.set()
        for a in answers:
            if not a.done:
                a.error = KeyboardInterrupt("interrupted")
        on_update(answers)
        raise
    finally:
        pool.shutdown(wait=not cancel.is_set())
    on_update(answers)
    return answers


@dataclass
class ChatSession:
    """One named conversation: alternating user/assistant messages."""

    name: str
    messages: list[dict[str, str]] = field(default_factory=list)

    def request_messages(self, prompt: str, max_history: int) -> list[dict[str, str]]:
        history = self.messages[-2 * max_history :] if max_history > 0 else []
        return [*history, {"role": "user", "content": prompt}]

    def record(self, prompt: str, answer: str) -> None:
        self.messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]

    @property
    def exchanges(self) -> int:
        return len(self.messages) // 2


class SessionStore:
    """Named in-memory sessions (per magics instance, i.e. per kernel)."""

    def __init__(self) -> None:
        self._sessions: dict[str, ChatSession] = {}

    def get(self, name: str) -> ChatSession:
        if name not in self._sessions:
            self._sessions[name] = ChatSession(name)
        return self._sessions[name]

    def reset(self, name: str | None = None) -> None:
        if name is None:
            self._sessions.clear()
        else:
            self._sessions.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._sessions)


class SessionList:
    """``%qfchat sessions``: names and exchange counts."""

    def __init__(self, rows: list[tuple[str, int]]) -> None:
        self.rows = rows

    def __repr__(self) -> str:
        if not self.rows:
            return "no chat sessions yet"
        return "\n".join(f"{name}: {n} exchange(s)" for name, n in self.rows)


class SessionHistory:
    """``%qfchat history NAME``: the transcript, as text and Markdown."""

    def __init__(self, session: ChatSession) -> None:
        self.session = session

    def __repr__(self) -> str:
        lines = [f"{m['role']}: {m['content']}" for m in self.session.messages]
        return "\n".join(lines) or f"session {self.session.name!r} is empty"

    def _repr_markdown_(self) -> str:
        parts = [f"**{m['role']}**: {m['content']}" for m in self.session.messages]
        return "\n\n".join(parts) or f"*session `{self.session.name}` is empty*"
