"""``%%qfchat --tools f,g``: the model may call notebook functions, the cell shows each call and
its result, asks before running each one (Run / Skip) unless ``--yes``, and loops to a final
answer within ``--max-steps`` model calls.

The calls go as v1 ``functions`` (the answer's ``function_call``; the result goes back as a
``function`` turn), which the local platform serves for any chat model and ERNIE serves in the
cloud. A function's schema comes from its type hints (pydantic's ``TypeAdapter``) and the first
paragraph of its docstring; its arguments are checked by ``pydantic.validate_call``. A function
that raises sends its error text back as the result. A call the model already made (same
arguments) is not run again: the next request leaves the functions out, so the model answers
(its last function result followed by :data:`FINAL_ASK`, see :func:`closing_messages`).

Without ``--yes`` the cell ends showing the call with Run / Skip buttons; a click runs (or skips)
it and goes on from the button's callback. Kernel -> Interrupt during a model call or a tool stops
the loop (the steps so far stay shown).
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from qfnb.notebook import _fmt, _theme, chat, chat_runner
from qfnb.notebook._checks import split_csv
from qfnb.notebook._ipython import live_display
from qfnb.notebook.chat_cell import build_cell_requests
from qfnb.notebook.errors import QfnbCellError, QfnbInterrupted

if TYPE_CHECKING:  # pragma: no cover
    from qfnb.notebook.chat_cell import ChatCellHost

__all__ = ["FINAL_ASK", "ToolCall", "ToolLoop", "closing_messages", "function_spec", "run_tools_cell"]

log = logging.getLogger("qfnb.notebook.chat_tools")


def function_spec(fn: Callable[..., Any]) -> dict[str, Any]:
    """The function's ``{"name", "description", "parameters"}`` from its type hints and docstring."""
    import pydantic

    try:
        params = pydantic.TypeAdapter(fn).json_schema()  # type: ignore[arg-type]
    except pydantic.PydanticUserError as exc:  # a parameter without a type pydantic can describe
        raise UsageError(f"--tools {fn.__name__}: cannot describe its parameters: {exc}") from None
    params.pop("additionalProperties", None)
    doc = (inspect.getdoc(fn) or "").split("\n\n", 1)[0].strip()
    return {"name": fn.__name__, "description": doc or fn.__name__.replace("_", " "), "parameters": params}


def resolve_tools(names: list[str], namespace: dict[str, Any]) -> dict[str, Callable[..., Any]]:
    """The named notebook functions; a missing or non-callable name is refused before anything is sent."""
    found: dict[str, Callable[..., Any]] = {}
    for name in names:
        fn = namespace.get(name)
        if fn is None:
            raise UsageError(f"--tools {name}: no function {name!r} in the notebook")
        if not inspect.isfunction(fn):
            raise UsageError(f"--tools {name}: a {type(fn).__name__}, not a function defined with def")
        found[name] = fn
    return found


@dataclass
class ToolCall:
    """One call the model asked for, and what came of it."""

    name: str
    arguments: str
    result: str | None = None
    status: str = "asked"  # asked | ran | failed | skipped | repeated

    def line(self) -> str:
        return f"{self.name}({self.arguments})"


@dataclass
class ToolLoop:
    """The state of one ``--tools`` cell: the conversation, the calls, the final answer."""

    backend: chat.ChatBackend
    request: chat.CellChatRequest  # the first request (model, sampling); messages grow from it
    tools: dict[str, Callable[..., Any]]
    max_steps: int
    interval: float = 0.1
    calls: list[ToolCall] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    answer: chat.ChatAnswer | None = None
    steps: int = 0
    done: bool = False
    offer: bool = True  # offer the functions in the next request
    on_change: Callable[[ToolLoop], None] = lambda loop: None

    def __post_init__(self) -> None:
        self.messages = list(self.request.messages)

    @property
    def pending(self) -> ToolCall | None:
        return self.calls[-1] if self.calls and self.calls[-1].status == "asked" else None

    def advance(self, *, confirm: bool) -> None:
        """Ask the model until it answers, the step cap is reached, or (``confirm``) a call waits for a click."""
        while not self.done and self.pending is None:
            self._ask()
            if self.pending is not None and not confirm:
                self.decide(run=True)

    def _ask(self) -> None:
        self.steps += 1
        last = self.steps >= self.max_steps or not self.offer
        body = {} if last else {"functions": [function_spec(fn) for fn in self.tools.values()]}
        from dataclasses import replace

        messages = closing_messages(self.messages) if last else list(self.messages)
        request = replace(self.request, messages=messages, body=body, stream=False)
        answers = chat_runner.run_chat(self.backend, [request], lambda a: self._show_answer(a[0]),
                                       interval=self.interval)
        answer = answers[0]
        called = _function_call(answer.response) if body else None  # nothing offered: its text is the answer
        if answer.error is not None or called is None:
            self.answer, self.done = answer, True
            self.on_change(self)
            return
        name, arguments = called
        call = ToolCall(name, arguments)
        if any(c.name == name and c.arguments == arguments and c.status in ("ran", "failed") for c in self.calls):
            call.status, self.offer = "repeated", False  # its result is already in the conversation
            self.calls.append(call)
        else:
            self.calls.append(call)
            self.messages.append({"role": "assistant", "content": "",
                                  "function_call": {"name": name, "arguments": arguments}})
        self.on_change(self)

    def _show_answer(self, answer: chat.ChatAnswer) -> None:
        self.answer = answer
        self.on_change(self)

    def decide(self, *, run: bool) -> None:
        """Run (or skip) the waiting call and put its result in the conversation."""
        call = self.pending
        if call is None:
            return
        if run:
            call.result, call.status = _run(self.tools.get(call.name), call)
        else:
            call.result, call.status = "the user declined to run this call", "skipped"
        self.messages.append({"role": "function", "name": call.name, "content": call.result})
        self.on_change(self)


def _function_call(response: Any) -> tuple[str, str] | None:
    body = getattr(response, "body", response)
    called = body.get("function_call") if isinstance(body, dict) else None
    if not isinstance(called, dict) or not called.get("name"):
        return None
    args = called.get("arguments")
    return str(called["name"]), args if isinstance(args, str) else json.dumps(args or {})


def _run(fn: Callable[..., Any] | None, call: ToolCall) -> tuple[str, str]:
    """The call's result text and status; an error's text is the result (the model sees it)."""
    import pydantic

    if fn is None:
        return f"error: no tool named {call.name!r}", "failed"
    try:
        kwargs = json.loads(call.arguments or "{}")
        if not isinstance(kwargs, dict):
            raise ValueError(f"arguments must be a JSON object, not {call.arguments!r}")
        value = pydantic.validate_call(fn)(**kwargs)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # the model gets the error text as the tool's result
        log.debug("tool %s failed", call.name, exc_info=True)
        return f"error: {type(exc).__name__}: {exc}", "failed"
    try:
        return (value if isinstance(value, str) else json.dumps(value, default=str)), "ran"
    except (TypeError, ValueError):
        return repr(value), "ran"


#: what the last request (no functions offered) adds after the last function result: the 0.5B model
#: otherwise writes another call as text instead of answering (bench/structured_output.py, tool loop)
FINAL_ASK = "Answer my question from this result, in one plain sentence."


def closing_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The history of the request that must be answered in text: the last function result asks for
    the answer from it (:data:`FINAL_ASK`). v1 has no user turn after a ``function`` turn (which
    stands where the user's would), so the ask goes in that turn, after the result; the template
    then renders it inside the result, right before the answer. Measured on the bench's 10 prompts
    with the 0.5B model: 10 of 10 answered from the result, none wrote a call again, against 3 of
    10 (7 calls again) with the same ask as the system line."""
    out = list(messages)
    if out and out[-1].get("role") == "function":
        out[-1] = {**out[-1], "content": f"{out[-1].get('content') or ''}\n\n{FINAL_ASK}"}
    return out

_MARK = {"asked": "· waiting for Run or Skip", "ran": "✓", "failed": "✗", "skipped": "· skipped",
         "repeated": "↺ already answered"}


def render(loop: ToolLoop) -> tuple[str, str]:
    """The cell's view as (markdown, plain text): each call with its result, then the answer."""
    md, plain = [], []
    for n, call in enumerate(loop.calls, 1):
        result = "" if call.result is None else f" → {call.result}"
        plain.append(f"[{n}] {_MARK[call.status]} {call.line()}{result}")
        md.append(f"**{n}.** `{call.line()}` {_MARK[call.status]}"
                  + (f"<br>→ <code>{_fmt.esc(call.result[:500])}</code>" if call.result is not None else ""))
    a = loop.answer
    if a is not None and (loop.done or not loop.pending):
        text = a.text if a.done or a.text else ""
        err = f"\n[error] {chat.error_line(a)}" if a.error is not None else ""
        if loop.done:
            plain.append(f"{text}{err}\n-- {a.footer} · {len(loop.calls)} tool call(s), {loop.steps} step(s)")
            md.append(f"{text}{_fmt.esc(err)}\n\n<sub>{a.footer_html} · {len(loop.calls)} tool call(s), "
                      f"{loop.steps} step(s)</sub>")
        elif not loop.calls or loop.calls[-1].status != "asked":
            plain.append(f"… {a.footer}")
            md.append(f"<sub>{_fmt.esc(a.footer)}</sub>")
    return "\n\n".join(md) or "…", "\n".join(plain) or "…"


def render_html(loop: ToolLoop) -> str:
    """The widget pane's HTML: each call with its result, then the answer and its footer."""
    parts = []
    for n, call in enumerate(loop.calls, 1):
        result = (f'<br><span style="color:{_theme.TEXT_MUTED}">→</span> <code>{_fmt.esc(call.result[:500])}</code>'
                  if call.result is not None else "")
        parts.append(f"<div><b>{n}.</b> <code>{_fmt.esc(call.line())}</code> {_MARK[call.status]}{result}</div>")
    a = loop.answer
    if a is not None and loop.done:
        parts.append(chat._md_to_html(a.text) if a.text else "")
        if a.error is not None:
            parts.append(f'<pre class="qfnb-error" style="color:{_theme.ERROR}">{_fmt.esc(chat.error_line(a))}</pre>')
        parts.append(f'<div class="qfnb-footer" style="color:{_theme.TEXT_MUTED};font-size:85%">{a.footer_html} · '
                     f"{len(loop.calls)} tool call(s), {loop.steps} step(s)</div>")
    elif a is not None and loop.pending is None:
        parts.append(f'<div class="qfnb-footer" style="color:{_theme.TEXT_MUTED};font-size:85%">'
                     f"{_fmt.esc(a.footer)}</div>")
    return f'<div style="color:{_theme.TEXT}">{"".join(parts) or "…"}</div>'


class ToolsView:
    """The widget form (Run / Skip): an HTML pane of the steps and a confirmation row."""

    def __init__(self, loop: ToolLoop, finish: Callable[[ToolLoop], None]) -> None:
        import ipywidgets as w

        self.loop, self.finish = loop, finish
        self.pane = w.HTML()
        self.question = w.HTML()
        self.run_button = w.Button(description="Run", button_style="primary", icon="play")
        self.skip_button = w.Button(description="Skip", icon="forward")
        self.run_button.on_click(lambda _b: self._decide(run=True))
        self.skip_button.on_click(lambda _b: self._decide(run=False))
        self.row = w.HBox([self.question, self.run_button, self.skip_button])
        self.box = w.VBox([self.pane, self.row])
        self.box.add_class("qfnb-tools")
        loop.on_change = lambda _loop: self.refresh()
        self.refresh()

    def refresh(self) -> None:
        self.pane.value = render_html(self.loop)
        call = self.loop.pending
        self.row.layout.display = None if call is not None else "none"
        if call is not None:
            self.question.value = (f'<span style="color:{_theme.TEXT}">Run <code>{_fmt.esc(call.line())}</code>?'
                                   "</span>")

    def _decide(self, *, run: bool) -> None:
        self.run_button.disabled = self.skip_button.disabled = True
        try:
            self.loop.decide(run=run)
            self.loop.advance(confirm=True)
        except (KeyboardInterrupt, QfnbInterrupted):
            self.loop.done = True
            log.info("tool loop interrupted")
        finally:
            self.run_button.disabled = self.skip_button.disabled = False
            self.refresh()
            if self.loop.done:
                self.finish(self.loop)


def _tools_of(magics: ChatCellHost, args: argparse.Namespace) -> dict[str, Callable[..., Any]]:
    """The cell's functions, each described; every problem refused before anything is sent."""
    if args.json or args.schema:
        raise UsageError("--tools answers in text: leave out --json/--schema")
    if args.max_steps < 1:
        raise UsageError(f"--max-steps must be at least 1, not {args.max_steps}")
    tools = resolve_tools(split_csv([args.tools]), magics.user_ns)
    if not tools:
        raise UsageError("--tools needs at least one function name")
    for fn in tools.values():
        function_spec(fn)
    return tools


def run_tools_cell(magics: ChatCellHost, args: argparse.Namespace, cell: str) -> Any:
    """Run one ``%%qfchat --tools`` cell."""
    tools = _tools_of(magics, args)
    built = build_cell_requests(magics, args, cell)
    if built is None:
        return None
    if len(built.requests) != 1:
        raise UsageError("--tools takes one model (-m NAME)")
    loop = ToolLoop(magics.chat_backend, built.requests[0], tools, args.max_steps, interval=magics.update_interval)

    def finish(done: ToolLoop) -> None:
        a = done.answer
        if a is not None and a.error is None:
            magics.sessions.get(args.session).record(built.prompt, a.text)
        if args.output:
            magics.user_ns[args.output] = a

    if args.yes:
        handle = live_display({"text/plain": "…"}, raw=True)

        def show(current: ToolLoop) -> None:
            md, plain = render(current)
            handle.update({"text/plain": plain, "text/markdown": md}, raw=True)

        loop.on_change = show
        refresh: Callable[[], None] = lambda: show(loop)  # noqa: E731
    else:
        view = ToolsView(loop, finish)
        live_display(view.box)
        refresh = view.refresh
    try:
        loop.advance(confirm=not args.yes)
    except KeyboardInterrupt:
        refresh()
        raise QfnbInterrupted(f"stopped after {loop.steps} step(s); the calls so far are shown") from None
    refresh()
    if loop.done:
        finish(loop)
        _raise_if_failed(loop)
    return None


def _raise_if_failed(loop: ToolLoop) -> None:
    a = loop.answer
    if a is not None and a.error is not None:
        raise QfnbCellError(f"{a.model}: {chat.error_line(a)}", title="qfchat failed") from a.error
