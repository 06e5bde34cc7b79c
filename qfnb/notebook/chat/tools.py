"""``%%qfchat --tools f,g`` and ``--mcp URL|COMMAND``: a view on :class:`qfnb.agents.ToolLoop`.
The cell shows each call and its result, asks before running each one (Run / Skip) unless
``--yes``, and shows the answer within ``--max-steps`` model calls, its footer summing every step.

The loop (schemas from type hints and docstrings, strict argument checks, the step cap, the
repeated-call rule) is the SDK's; here are the notebook's model call and its two views. The
calls go as v1 ``functions`` (the answer's ``function_call``; the result goes back as a
``function`` turn), which the local platform serves for any chat model and ERNIE serves in the
cloud; the backend converts the loop's OpenAI-shaped history to that.

The cell's exchange goes into its session (``-s NAME`` or ``default``, kept in the kernel) with
its tool turns: the assistant's ``tool_calls`` and the ``tool`` results, then the answer; later
plain cells send them back as turns. A tool cell itself sends ``QfnbMagics.tool_history`` earlier
exchanges (default 0: its question alone, as measured best for the local tool model).

Without ``--yes`` the cell ends showing the call with Run / Skip buttons; a click runs (or skips)
it and goes on from the button's callback. Kernel -> Interrupt during a model call or a tool stops
the loop (the steps so far stay shown).
"""

from __future__ import annotations

import atexit
import inspect
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from qfnb._core.http.response import QfResponse
from qfnb._core.record.ledger import Figures, current_cell, figures
from qfnb.agents import CachedToolResults, Decision, FunctionTool, StepReply, ToolDescriptionError, ToolLoop, ToolRun
from qfnb.agents.loop import run_every_call
from qfnb.notebook._checks import split_csv
from qfnb.notebook._ipython import live_display
from qfnb.notebook.arguments import ChatArgs
from qfnb.notebook.chat import answer as chat
from qfnb.notebook.chat import runner
from qfnb.notebook.chat.cell import build_cell_requests
from qfnb.notebook.chat.sessions import DEFAULT_SESSION
from qfnb.notebook.errors import QfnbCellError, QfnbInterrupted
from qfnb.notebook.render import theme
from qfnb.protocol.console.model_names import LOCAL_TOOL_MODEL, tool_calling, unreliable_tools_note
from qfnb.resources.safe_html import clean, escape, markdown

if TYPE_CHECKING:  # pragma: no cover
    from qfnb.notebook.chat.cell import ChatCellHost

__all__ = ["NotebookStep", "ToolsCell", "render", "render_html", "resolve_tools", "run_tools_cell"]

log = logging.getLogger("qfnb.notebook.chat.tools")


def resolve_tools(names: list[str], namespace: dict[str, Any]) -> dict[str, FunctionTool]:
    """The named notebook functions as tools; a missing, non-callable or undescribable name is
    refused before anything is sent."""
    found: dict[str, FunctionTool] = {}
    for name in names:
        fn = namespace.get(name)
        if fn is None:
            raise UsageError(f"--tools {name}: no function {name!r} in the notebook")
        if not inspect.isfunction(fn):
            raise UsageError(f"--tools {name}: a {type(fn).__name__}, not a function defined with def")
        try:
            found[name] = FunctionTool.from_function(fn)
        except ToolDescriptionError as exc:
            raise UsageError(f"--tools {exc}") from None
    return found


@dataclass
class NotebookStep:
    """The loop's model call in a notebook: the cell's request with the loop's history (as v1
    turns) and the tools as ``functions``, streamed through :func:`runner.run_chat`; the
    shown :class:`chat.CellAnswer` is the latest one, and ``latency`` sums every step's."""

    backend: chat.ChatBackend
    request: chat.CellChatRequest
    interval: float = 0.1
    answer: chat.CellAnswer | None = None
    latency: float = 0.0
    on_answer: Callable[[], None] = lambda: None

    def __call__(self, messages: list[dict[str, Any]], tools: Sequence[FunctionTool]) -> StepReply:
        body = {"functions": [t.spec() for t in tools]} if tools else {}
        request = replace(self.request, messages=list(messages), body=body, stream=False)
        answer = runner.run_chat(self.backend, [request], lambda a: self._show(a[0]), interval=self.interval)[0]
        self._show(answer)
        self.latency += answer.latency or 0.0
        called = _function_call(answer.response) if tools else None  # nothing offered: its text is the answer
        calls = ((*called, ""),) if called is not None else ()
        return StepReply(text=answer.text, calls=calls, usage=answer.usage, error=answer.error,
                     replayed=answer.cached_age is not None)

    def _show(self, answer: chat.CellAnswer) -> None:
        self.answer = answer
        self.on_answer()


def _function_call(response: Any) -> tuple[str, str] | None:
    body = response.body if isinstance(response, QfResponse) else response
    called = body.get("function_call") if isinstance(body, dict) else None
    if not isinstance(called, dict) or not called.get("name"):
        return None
    args = called.get("arguments")
    return str(called["name"]), args if isinstance(args, str) else json.dumps(args or {})


@dataclass
class ToolsCell:
    """One ``--tools`` cell: the SDK's loop and the notebook's model call it runs on."""

    loop: ToolLoop
    step: NotebookStep
    views: list[Callable[[], None]] = field(default_factory=list)
    #: when the cell began and which cell it is: the ledger's rows of its steps
    since: float = field(default_factory=time.time)
    cell: int | None = field(default_factory=current_cell)
    _figures: Figures | None = None

    def changed(self) -> None:
        for view in self.views:
            view()

    def total_answer(self) -> chat.CellAnswer | None:
        """The latest answer with the loop's figures: tokens and latency summed over all steps, and
        what the steps generated and replayed from the cache (the ledger's :class:`Figures`)."""
        a = self.step.answer
        if a is None or not self.loop.done:
            return a
        if self._figures is None:  # read once the loop is done: every step's row is in the ledger
            self._figures = figures(self.since, cell=self.cell)
        return replace(a, usage=dict(self.loop.usage) or a.usage, latency=self.step.latency or a.latency,
                       figures=self._figures)


_MARK = {"asked": "· waiting for Run or Skip", "ran": "✓", "failed": "✗", "skipped": "· skipped",
         "repeated": "↺ already answered", "replayed": "↺ replayed its recorded result (not run again)"}


def _steps_line(loop: ToolLoop) -> str:
    line = f"{len(loop.calls)} tool call(s), {loop.steps} step(s)"
    if replayed := loop.replayed:
        line += (f" · ↺ {len(replayed)} call(s) in the replayed answer gave their recorded results, not run again"
                 " (--rerun-tools runs them)")
    return line


def render(cell: ToolsCell) -> tuple[str, str]:
    """The cell's view as (sanitised HTML, plain text): each call with its result, then the answer."""
    loop, plain = cell.loop, []
    for n, call in enumerate(loop.calls, 1):
        result = "" if call.result is None else f" → {call.result}"
        plain.append(f"[{n}] {_MARK[call.status]} {call.line()}{result}")
    a = cell.total_answer()
    if a is not None and (loop.done or not loop.pending):
        text = a.text if a.done or a.text else ""
        err = f"\n[error] {chat.error_line(a)}" if a.error is not None else ""
        stopped = f"\n[stopped] {loop.stopped}" if loop.stopped else ""
        if loop.done:
            plain.append(f"{text}{err}{stopped}\n-- {a.footer} · {_steps_line(loop)}")
        elif not loop.calls or loop.calls[-1].status != "asked":
            plain.append(f"… {a.footer}")
    return render_html(cell), "\n".join(plain) or "…"


def render_html(cell: ToolsCell) -> str:
    """The view's HTML: each call with its result, then the answer and its footer (sanitised)."""
    loop, parts = cell.loop, []
    for n, call in enumerate(loop.calls, 1):
        result = (f'<br><span style="color:{theme.TEXT_MUTED}">→</span> '
                  f"<code>{escape(call.result[:500])}</code>" if call.result is not None else "")
        parts.append(f"<div><b>{n}.</b> <code>{escape(call.line())}</code> "
                     f"{escape(_MARK[call.status])}{result}</div>")
    a = cell.total_answer()
    footer = f'<div class="qfnb-footer" style="color:{theme.TEXT_MUTED};font-size:85%">'
    if a is not None and loop.done:
        parts.append(markdown(a.text) if a.text else "")
        if a.error is not None:
            parts.append(f'<pre class="qfnb-error" style="color:{theme.ERROR}">'
                         f"{escape(chat.error_line(a))}</pre>")
        if loop.stopped:
            parts.append(f'<pre class="qfnb-error" style="color:{theme.ERROR}">{escape(loop.stopped)}</pre>')
        parts.append(f"{footer}{a.footer_html} · {_steps_line(loop)}</div>")
    elif a is not None and loop.pending is None:
        parts.append(f"{footer}{escape(a.footer)}</div>")
    return clean(f'<div class="qfnb-tools-steps" style="color:{theme.TEXT}">{"".join(parts) or "…"}</div>')


def _wait_for_click(call: ToolRun) -> Decision:
    """The confirm callback of the widget form: every call waits for Run or Skip."""
    return "wait"


def waiting_line(call: ToolRun) -> str:
    """What a saved or exported notebook shows for a call that waited for Run or Skip."""
    return f"waiting for approval: {call.line()}"


class ToolsView:
    """The widget form (Run / Skip): an HTML pane of the steps and a confirmation row. Displayed
    as itself: the widget, and for a saved notebook or an export (no widget manager) the steps as
    static HTML with a "waiting for approval: f(args)" block, republished on each decision."""

    def __init__(self, cell: ToolsCell, finish: Callable[[ToolsCell], None]) -> None:
        import ipywidgets as w  # deferred: loads ipywidgets (`%load_ext qfnb` does not)

        from qfnb.notebook.render._ipywidgets import SafeHTML  # deferred: loads ipywidgets

        self.cell, self.finish = cell, finish
        self.pane = SafeHTML()
        self.question = SafeHTML()
        self.run_button = w.Button(description="Run", button_style="primary", icon="play")
        self.skip_button = w.Button(description="Skip", icon="forward")
        self.run_button.on_click(lambda _b: self._decide(run=True))
        self.skip_button.on_click(lambda _b: self._decide(run=False))
        self.row = w.HBox([self.question, self.run_button, self.skip_button])
        self.box = w.VBox([self.pane, self.row])
        self.box.add_class("qfnb-tools")
        self.handle: Any = None  # the display to republish (live_display(view)) when a decision changes it
        self._shown: tuple[tuple[str, ...], bool] | None = None
        cell.views.append(self.refresh)
        self.refresh()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        data = dict(self.box._repr_mimebundle_() or {})
        call = self.cell.loop.pending
        html, plain = render(self.cell)
        if call is not None:
            plain = f"{plain}\n{waiting_line(call)}" if plain != "…" else waiting_line(call)
            html = clean(f'{html}<div class="qfnb-waiting" style="color:{theme.TEXT};border-left:3px solid '
                         f'{theme.BORDER};padding:2px 8px">⏸ {escape(waiting_line(call))} · run the cell again '
                         "to decide</div>")
        data.update({"text/plain": plain, "text/html": html})
        return data

    def refresh(self) -> None:
        self.pane.value = render_html(self.cell)
        call = self.cell.loop.pending
        self.row.layout.display = None if call is not None else "none"
        if call is not None:
            line = escape(call.line())
            self.question.value = f'<span style="color:{theme.TEXT}">Run <code>{line}</code>?</span>'
        shown = (tuple(c.status for c in self.cell.loop.calls), self.cell.loop.done)
        if self.handle is not None and shown != self._shown:  # the saved fallback follows each decision
            self._shown = shown
            self.handle.update(self)

    def _decide(self, *, run: bool) -> None:
        loop = self.cell.loop
        self.run_button.disabled = self.skip_button.disabled = True
        try:
            loop.decide(run=run)
            loop.advance(_wait_for_click)
        except (KeyboardInterrupt, QfnbInterrupted):
            loop.done = True
            log.info("tool loop interrupted")
        finally:
            self.run_button.disabled = self.skip_button.disabled = False
            self.refresh()
            if loop.done:
                self.finish(self.cell)


#: the MCP servers this kernel has connected, by target: kept open across cells (a stdio server
#: keeps its process), closed when the kernel exits
_MCP_SERVERS: dict[str, Any] = {}


def mcp_tools(targets: Sequence[str], call_timeout: float | None = None) -> dict[str, FunctionTool]:
    """The tools of the MCP servers ``targets`` (URLs or command lines), connected once per kernel
    (``call_timeout``: their calls' deadline from now on); a server that cannot be reached is
    refused before anything is sent."""
    if not targets:
        return {}
    if call_timeout is not None and not call_timeout > 0:
        raise UsageError(f"--mcp-timeout must be a positive number of seconds, not {call_timeout:g}")
    try:
        from qfnb.agents.mcp_client import McpError, McpToolbox  # deferred: the mcp package is an extra
    except ImportError as exc:
        raise UsageError(f"--mcp needs the mcp package: pip install 'qfnb[mcp]' ({exc})") from None
    found: dict[str, FunctionTool] = {}
    for target in targets:
        box = _MCP_SERVERS.get(target)
        if box is None:
            try:
                box = McpToolbox.open(target)
            except (McpError, ValueError) as exc:
                raise UsageError(f"--mcp {target}: {exc}") from None
            if not _MCP_SERVERS:
                atexit.register(_close_mcp_servers)
            _MCP_SERVERS[target] = box
        if call_timeout is not None:
            box.limits = replace(box.limits, call_timeout=call_timeout)
        found.update({t.name: t for t in box.tools})
    return found


def _close_mcp_servers() -> None:
    for box in list(_MCP_SERVERS.values()):
        box.close()
    _MCP_SERVERS.clear()


def _tools_of(magics: ChatCellHost, args: ChatArgs) -> dict[str, FunctionTool]:
    """The cell's tools (notebook functions and MCP servers' tools), each described; every problem
    refused before anything is sent."""
    if args.json or args.schema:
        raise UsageError("--tools answers in text: leave out --json/--schema")
    if args.max_steps < 1:
        raise UsageError(f"--max-steps must be at least 1, not {args.max_steps}")
    tools = resolve_tools(split_csv([args.tools]), magics.user_ns) if args.tools else {}
    for name, tool in mcp_tools(args.mcp, args.mcp_timeout).items():
        if name in tools:
            raise UsageError(f"--mcp: the server's tool {name!r} has the name of a --tools function")
        tools[name] = tool
    if not tools:
        raise UsageError("--tools needs at least one function name" if args.tools is not None
                         else "--mcp: the servers offer no tools")
    return tools


def _prefer_tool_model(magics: ChatCellHost, args: ChatArgs) -> ChatArgs:
    """``args``; with no ``-m``/``--endpoint`` and no configured default, asking the tool model
    (:data:`LOCAL_TOOL_MODEL`, chosen by measurement) when the platform lists it."""
    if args.model or args.endpoint or magics.default_model:
        return args
    if _tool_model_listed(magics):
        return replace(args, model=(LOCAL_TOOL_MODEL,))
    return args


def _tool_model_listed(magics: ChatCellHost) -> bool:
    listing = magics.names.get(wait=3.0)
    return listing is not None and LOCAL_TOOL_MODEL in listing.names("chat")


#: the models this kernel said call tools unreliably (said once per model)
_SAID_UNRELIABLE: set[str] = set()


def model_note(magics: ChatCellHost, request: chat.CellChatRequest, *, picked: bool) -> str | None:
    """The footer's word on the loop's model: the tool model when the cell picked it (every such
    cell), or, once per kernel, that the model asked (named or the platform's default) calls tools
    unreliably and where the tool model is."""
    if picked:
        return "the tool model, picked for tools (-m NAME picks another)"
    asked = request.model or request.name
    if not asked or asked in _SAID_UNRELIABLE or tool_calling(asked) != "unreliable":
        return None  # the listing is read only for a model that calls tools unreliably
    _SAID_UNRELIABLE.add(asked)
    note = unreliable_tools_note(asked, tool_model_served=_tool_model_listed(magics), how="-m {model}")
    log.warning("%s", note)
    return note


def _with_model_note(magics: ChatCellHost, request: chat.CellChatRequest, *, picked: bool) -> chat.CellChatRequest:
    note = model_note(magics, request, picked=picked)
    return request if note is None else replace(request, note=" · ".join(n for n in (request.note, note) if n))


#: the footer's word when a tool cell's session has exchanges it does not send (``tool_history`` 0)
ASKED_ALONE = "asked alone, as agent runs are (%config QfnbMagics.tool_history = N sends N earlier exchanges)"


def _alone_note(magics: ChatCellHost, args: ChatArgs, request: chat.CellChatRequest) -> chat.CellChatRequest:
    """Say so in the footer when a tool cell leaves its session's earlier exchanges out."""
    if request.turns or not magics.sessions.get(args.session or DEFAULT_SESSION).exchanges:
        return request
    return replace(request, note=" · ".join(n for n in (request.note, ASKED_ALONE) if n))


def run_tools_cell(magics: ChatCellHost, args: ChatArgs, cell: str) -> Any:
    """Run one ``%%qfchat --tools`` cell."""
    tools = _tools_of(magics, args)
    chosen = _prefer_tool_model(magics, args)
    built = build_cell_requests(magics, chosen, cell, kept=False,
                                max_history=min(magics.tool_history, magics.max_history))
    if built is None:
        return None
    if len(built.requests) != 1:
        raise UsageError("--tools takes one model (-m NAME)")
    request = _with_model_note(magics, _alone_note(magics, args, built.requests[0]), picked=chosen is not args)
    step = NotebookStep(magics.chat_backend, request, interval=magics.update_interval)
    loop = ToolLoop(step, tools, list(request.messages), max_steps=args.max_steps, record=CachedToolResults(),
                    rerun_tools=args.rerun_tools)
    tools_cell = ToolsCell(loop, step)
    step.on_answer = tools_cell.changed
    tools_cell.loop.on_change = lambda _loop: tools_cell.changed()

    def finish(done: ToolsCell) -> None:
        a = done.total_answer()
        if a is not None and a.error is None and not done.loop.stopped:  # the exchange with its calls and results
            tool_turns = done.loop.messages[len(request.messages):]
            magics.sessions.get(args.session or DEFAULT_SESSION).record(built.prompt, a.text, tool_turns)
        if args.output:
            magics.user_ns[args.output] = a

    if args.yes:
        handle = live_display({"text/plain": "…"}, raw=True)

        def show() -> None:
            page, plain = render(tools_cell)
            handle.update({"text/plain": plain, "text/html": page}, raw=True)

        tools_cell.views.append(show)
        refresh: Callable[[], None] = show
    else:
        view = ToolsView(tools_cell, finish)
        view.handle = live_display(view)
        refresh = view.refresh
    try:
        tools_cell.loop.advance(run_every_call if args.yes else _wait_for_click)
    except KeyboardInterrupt:
        refresh()
        raise QfnbInterrupted(f"stopped after {tools_cell.loop.steps} step(s); the calls so far are shown") from None
    refresh()
    if tools_cell.loop.done:
        finish(tools_cell)
        _raise_if_failed(tools_cell)
    return None


def _raise_if_failed(cell: ToolsCell) -> None:
    a = cell.step.answer
    if a is not None and a.error is not None:
        raise QfnbCellError(f"{a.model}: {chat.error_line(a)}", title="qfchat failed") from a.error
