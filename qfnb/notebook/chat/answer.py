"""Chat for ``%%qfchat``: requests, the platform's async stream and the answer display (no IPython here).

A backend streams one request as an async iterator of :class:`ChatDelta`, run on qfnb's loop
by :mod:`qfnb.notebook.chat.runner` into a :class:`CellAnswer`. Nothing here prints or displays.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from qfnb import resources
from qfnb._core.http.response import QfResponse
from qfnb._core.record.ledger import Figures
from qfnb.notebook.chat.cell_keys import CellKeys
from qfnb.notebook.chat.conversations import Chain, PlatformConversations, replay_turn, stream_turn, turn_body
from qfnb.notebook.chat.sessions import ChatSession, SessionHistory, SessionList, SessionStore
from qfnb.notebook.render import theme as _theme
from qfnb.notebook.sampling import SamplingOptions
from qfnb.protocol.wires.chat.tools import openai_history_as_v1
from qfnb.resources.defaults import default_model
from qfnb.resources.safe_html import clean, escape, markdown
from qfnb.resources.where import backend

if TYPE_CHECKING:  # the daemon's client is loaded when a footer asks (`%load_ext qfnb` does not)
    from qfnb._core.backend.daemon import EngineState

__all__ = [
    "CellAnswer",
    "CellChatRequest",
    "ChatBackend",
    "ChatDelta",
    "ChatSession",
    "ResourcesBackend",
    "SessionHistory",
    "SessionList",
    "SessionStore",
    "render_answers",
]

log = logging.getLogger("qfnb.notebook.chat.answer")


@dataclass(frozen=True)
class CellChatRequest:
    """One model call. ``messages`` already include the session history and the new prompt, as
    OpenAI chat messages (a tool cell's ``tool_calls`` and ``tool`` turns too: the backend sends
    them in its wire's form)."""

    messages: list[dict[str, Any]]
    model: str | None = None
    endpoint: str | None = None
    system: str | None = None
    sampling: SamplingOptions = field(default_factory=SamplingOptions)  # -t, --top-p, ..., --max-tokens
    stream: bool = True
    name: str | None = None  # what the footer calls the model when ``model`` is None (the default's name)
    session: str | None = None  # the %%qfchat session the history came from
    turns: int = 0  # earlier exchanges of that session sent with this prompt
    note: str | None = None  # a word for the footer (a base model's warning)
    where: str | None = None  # which platform answers ("local", "cloud")
    fresh: bool = False  # ask the model again instead of replaying a cached answer (--fresh)
    body: dict[str, Any] = field(default_factory=dict)  # further body fields (response_format, functions)
    chain: Chain | None = None  # a named session's turn: the platform keeps the conversation (-s NAME)
    place: int = 0  # the exchanges of its session before this cell (part of the call's key: .cell_keys)

    @property
    def temperature(self) -> float | None:
        return self.sampling.temperature

    @property
    def max_tokens(self) -> int | None:
        """The answer's cap (``--max-tokens``, sent as ``max_output_tokens``)."""
        return self.sampling.max_output_tokens

    @property
    def context(self) -> str:
        """The footer's account of what was sent besides the prompt, and to whom."""
        turns = f"{self.turns} turn{'s' if self.turns != 1 else ''} in context"
        session = f"session {self.session} · {turns}" if self.session is not None else ""
        return " · ".join(part for part in (session, self.where, self.note) if part)

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
    """``stream`` returns an async iterator, read on qfnb's loop; Kernel -> Interrupt cancels the
    task reading it, so its ``finally`` must close the connection (an async generator's does).
    ``conversations``: where ``-s NAME`` sessions are kept (None: in the kernel)."""

    @property
    def conversations(self) -> PlatformConversations | None: ...

    def stream(self, request: CellChatRequest) -> AsyncIterator[ChatDelta]: ...

    def default_model(self) -> str | None:
        """The model a cell without ``-m`` asks, as the footer names it (None: unnamed)."""

    def where(self) -> str | None:
        """The footer's word for where calls go (None: none)."""

    def engine_state(self, request: CellChatRequest, label: str) -> EngineState | None:
        """The engine that serves ``request`` (loading or not; :mod:`.loading`); None: unknown (the
        cloud), the footer stays as it was."""


def _delta(resp: QfResponse[Any]) -> ChatDelta:
    body = resp.body
    return ChatDelta(text=body.get("result") or "", usage=body.get("usage"), response=resp)


class ResourcesBackend:
    """The real backend: :class:`qfnb.resources.ChatCompletion` (streaming or not); named sessions
    on the platform's Responses API."""

    def __init__(self) -> None:
        self._conversations = PlatformConversations()
        self.keys = CellKeys()

    @property
    def conversations(self) -> PlatformConversations | None:
        """Where ``-s NAME`` sessions are kept: qfnb's own local platform, which lists its stored
        responses by session; None elsewhere (the cloud, a platform named by ``QIANFAN_*``
        variables): the kernel keeps them."""
        try:
            where = backend()
        except Exception:  # a broken config shows up on the call itself
            return None
        return self._conversations if where.kind == "local" and not where.variables else None

    async def stream(self, request: CellChatRequest) -> AsyncIterator[ChatDelta]:
        """The deltas of one call; the answering model's name comes first (an empty delta).
        Cancelling the reader closes the HTTP stream: the server sees the client go and stops.
        A named session's turn goes to the platform's Responses API (:mod:`.conversations`)."""
        if request.chain is not None:
            async for piece in self._turn(request, request.chain):
                yield piece
            return
        result: Any = None
        identity = self.keys.identity(session=request.session, place=request.place, request={
            "model": request.model or request.name, "endpoint": request.endpoint, "messages": request.messages,
            "system": request.system, "sampling": request.sampling.fields(), "body": request.body,
            "stream": request.stream})
        try:
            res = resources.ChatCompletion(model=request.model, endpoint=request.endpoint,
                                           cache="refresh" if request.fresh else None)
            target = await res.aresolve()
            if target.model and not request.endpoint:
                yield ChatDelta(text="", model=target.model)
            with self.keys.run(identity):  # a run given up on leaves its key to the cell's next run
                result = await res.ado(messages=openai_history_as_v1(request.messages), stream=request.stream,
                                       system=request.system or None,
                                       idempotency_key=self.keys.key(identity, fresh=request.fresh),
                                       sampling=request.sampling, **request.body)
                if request.stream:
                    async for resp in result:
                        yield _delta(resp)
                else:
                    yield _delta(result)
        finally:
            if isinstance(result, AsyncGenerator):  # a stream (ChatCompletion's chunks), closed if left early
                with contextlib.suppress(BaseException):
                    await result.aclose()

    async def _turn(self, request: CellChatRequest, chain: Chain) -> AsyncIterator[ChatDelta]:
        """A named session's turn on the platform's Responses API (:mod:`.conversations`); a
        re-run cell's stored turn is shown again, with no call."""
        if chain.replay is not None:
            for piece in replay_turn(chain.replay):
                yield ChatDelta(text=piece.text, usage=piece.usage, response=piece.response, model=piece.model)
            return
        from qfnb.resources.v2_client import Qianfan  # deferred: loads the HTTP client (`%load_ext qfnb` does not)

        client = Qianfan(cache="refresh") if request.fresh else Qianfan()
        body = turn_body(request.model or request.name or request.endpoint, str(request.messages[-1]["content"]),
                         chain, system=request.system, sampling=request.sampling.fields(),
                         response_format=request.body.get("response_format"))
        identity = self.keys.identity(session=request.session, place=request.place,
                                      request={**body, "stream": request.stream})
        with self.keys.run(identity):  # a run given up on leaves its key to the cell's next run
            key = self.keys.key(identity, fresh=request.fresh)
            async for piece in stream_turn(client.responses, {**body, "idempotency_key": key}, stream=request.stream):
                yield ChatDelta(text=piece.text, usage=piece.usage, response=piece.response, model=piece.model)

    def default_model(self) -> str | None:
        """The platform's default chat model's name (no network: the catalog and the config)."""
        try:
            return default_model("chat")
        except Exception:  # a broken config shows up on the call itself
            return None

    def where(self) -> str | None:
        """The footer's word for where calls go (``local``, ``cloud (QIANFAN_AK set)``)."""
        try:
            return backend().label
        except Exception:  # a broken config shows up on the call itself
            return None

    def engine_state(self, request: CellChatRequest, label: str) -> EngineState | None:
        """The local platform's engine for this request (loading or not); None when unknown."""
        # deferred: loads the daemon's client (`%load_ext qfnb` does not)
        from qfnb.notebook.chat.loading import local_engine_state

        return local_engine_state((request.model, request.endpoint, request.name, label))


@dataclass
class CellAnswer:
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
    context: str = ""  # session, turns in context, where it ran (CellChatRequest.context)
    #: a loop's figures over all its steps (generated / replayed from the cache), from the ledger
    figures: Figures | None = None
    started: float = field(default_factory=time.perf_counter, repr=False)
    responses: list[Any] = field(default_factory=list, repr=False)

    @property
    def provenance(self) -> dict[str, Any]:
        """Where the answer came from (model, parameters, prompt hash, usage, cache hit, platform)."""
        last = self.response if self.response is not None else (self.responses[-1] if self.responses else None)
        return dict(last.provenance) if isinstance(last, QfResponse) else {}

    @property
    def cached_age(self) -> float | None:
        """Seconds since a replayed answer was first given; None for a fresh one."""
        cache = self.provenance.get("cache") or {}
        return float(cache.get("age_s", 0.0)) if cache.get("hit") else None

    def __str__(self) -> str:
        return self.text

    @property
    def footer(self) -> str:
        """The line under the answer, as text: model, usage, latency, and "↺ cached" for a replay."""
        return self._footer(cached=True)

    @property
    def footer_html(self) -> str:
        """The footer for Markdown/HTML outputs: the same line, its replay part as :func:`cached_badge`."""
        text = escape(self._footer(cached=False))
        if not self.done or self.cached_age is None:
            return text
        return f"{text} · {cached_badge(self.cached_age, self._saved_tokens)}"

    @property
    def _saved_tokens(self) -> int | None:
        """What a replay saved: the loop's replayed steps' tokens, else the answer's own."""
        if self.figures is not None:
            return self.figures.saved_tokens
        total = (self.usage or {}).get("total_tokens")
        return total if isinstance(total, int) else None

    def _footer(self, *, cached: bool) -> str:
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
        if self.figures is not None and self.done and (split := self.figures.line()):
            parts.append(split)  # a loop: what its steps generated and what they replayed
        if self.context:
            parts.append(self.context)
        if cached and self.done and self.cached_age is not None:
            parts.append(f"↺ cached · {cached_ago(self.cached_age)}{_saved(self._saved_tokens)} · "
                         "--fresh to ask again")
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


def _saved_provenance(answer: CellAnswer) -> dict[str, Any]:
    """What a saved notebook keeps of an answer's provenance (no secrets: the platform by URL)."""
    found = answer.provenance
    return {k: found[k] for k in ("model", "api", "params", "prompt_hash", "usage", "latency_s", "cache",
                                  "platform", "base_url") if k in found}


def error_line(answer: CellAnswer) -> str:
    err = answer.error
    return f"{type(err).__name__}: {err}" if err is not None else ""


def cached_badge(age_s: float, saved_tokens: int | None = None) -> str:
    """``↺ cached · 3 min ago · 191 tokens saved · --fresh to ask again`` as HTML, quiet in any theme
    (the footer of a replayed answer; the tokens it saved are what the ledger counts as saved)."""
    return (f'<span class="qfnb-cached" style="color:{_theme.TEXT_MUTED}" '
            f'title="answered from qfnb\'s response cache">↺ cached · {cached_ago(age_s)}{_saved(saved_tokens)} · '
            "<code>--fresh</code> to ask again</span>")


def _saved(tokens: int | None) -> str:
    return f" · {tokens:,} tokens saved" if tokens else ""


def cached_ago(age_s: float) -> str:
    """``12 s ago`` / ``3 min ago`` / ``2 h ago`` / ``4 days ago``."""
    if age_s < 90:
        return f"{int(age_s)} s ago"
    if age_s < 5400:
        return f"{round(age_s / 60)} min ago"
    if age_s < 172800:
        return f"{round(age_s / 3600)} h ago"
    return f"{round(age_s / 86400)} days ago"


def close_fences(text: str) -> str:
    """``text`` with a code block it leaves open closed, so what follows (the footer) is not read
    as code: an answer cut off inside a ``` block showed its footer as literal ``<sub>…</sub>``."""
    fence = None
    for line in text.splitlines():
        mark = line.lstrip()[:3]
        if mark in ("```", "~~~") and (fence is None or mark == fence):
            fence = mark if fence is None else None
    return text if fence is None else f"{text}\n{fence}"


def render_answers(answers: Sequence[CellAnswer]) -> tuple[dict[str, str], dict[str, Any]]:
    """A mimebundle (text/plain always; sanitised HTML: one answer's Markdown rendered, or columns
    for several); its metadata records each answer's provenance, so a saved notebook says what
    produced it. Never ``text/markdown``: JupyterLab shows a live output's Markdown with its raw HTML."""
    meta: dict[str, Any] = {"qfnb": {"models": [a.model for a in answers]}}
    if any(a.done for a in answers):
        meta["qfnb"]["provenance"] = [_saved_provenance(a) for a in answers]
    plain_parts = []
    for a in answers:
        head = f"[{a.model}]\n" if len(answers) > 1 else ""
        err = f"\n[error] {error_line(a)}" if a.error is not None else ""
        plain_parts.append(f"{head}{a.text}{err}\n-- {a.footer}")
    data = {"text/plain": "\n\n".join(plain_parts)}
    if len(answers) == 1:
        a = answers[0]
        cursor = " ▌" if not a.done else ""
        data["text/html"] = clean(
            f'<div class="qfnb-answer">{markdown(close_fences(a.text + cursor))}'
            f'<div class="qfnb-footer" style="color:{_theme.TEXT_MUTED};font-size:85%">{a.footer_html}</div></div>')
        return data, meta
    cols = []
    for a in answers:
        body = markdown(a.text) if a.text else ("<i>waiting…</i>" if not a.done else "")
        if a.error is not None:
            body += f'<pre class="qfnb-error" style="color:{_theme.ERROR}">{escape(error_line(a))}</pre>'
        cols.append(
            f'<div style="flex:1;min-width:0;border:1px solid {_theme.BORDER};border-radius:6px;padding:6px 10px;'
            f'color:{_theme.TEXT}"><b>{escape(a.model)}</b>{body}'
            f'<div class="qfnb-footer" style="color:{_theme.TEXT_MUTED};font-size:85%">{a.footer_html}</div></div>'
        )
    data["text/html"] = clean(f'<div class="qfnb-chat" style="display:flex;gap:10px">{"".join(cols)}</div>')
    return data, meta
