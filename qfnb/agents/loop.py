"""The tool loop: ask the model with the tools offered, run each call it makes (once confirmed),
send the results back, and repeat until it answers in text or the step cap is reached.

The loop knows no wire and no UI. A *step* function makes one model call (the conversation as
OpenAI chat messages, the tools to offer; none offered means "answer in text") and reports a
:class:`StepReply`. A *confirm* callback decides each call: ``"run"``, ``"skip"``, or ``"wait"`` (the
loop pauses with the call pending; :meth:`ToolLoop.decide` resumes it, e.g. from a button).

What keeps a small model from spinning: a call it already made (same name and arguments) is not
run again, and the next request offers no tools; the last request allowed by ``max_steps``
offers none either, and its last tool result carries :data:`FINAL_ASK`; so does the request after
an empty answer that follows tool results (the 1.5B tool model, chaining searches, answered one with
nothing: bench/syllabus_agents.py). When even that request gives no text, the loop stops with
:attr:`ToolLoop.stopped` saying so rather than asking again.
``usage`` sums every step's tokens. Each call that runs is a span (``execute_tool``) in the data dir's
trace table, and the model calls the tool makes nest under it (``%qftrace``).

Replay: a call inside a *replayed* answer (:attr:`StepReply.replayed`: the step answered from a record,
as a notebook's Restart & Run All does from the response cache) is not run again. With a
:class:`ToolRecord`, its recorded result goes back to the model (status ``replayed``) without
asking ``confirm``, unless ``rerun_tools``; each call that runs is kept in the record, keyed by
the conversation before it, its name, arguments and the tool's description.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from qfnb._core.record.traces import tool_span
from qfnb.agents.tools import ArgumentsError, FunctionTool

__all__ = ["FINAL_ASK", "Confirm", "Decision", "Step", "StepReply", "ToolLoop", "ToolRecord", "ToolRun",
           "closing_messages", "run_every_call"]

log = logging.getLogger("qfnb.agents.loop")

Decision = Literal["run", "skip", "wait"]
#: what the last request (no tools offered) adds to the last tool result: the 0.5B model otherwise
#: writes another call as text instead of answering (bench/structured_output.py, tool loop)
FINAL_ASK = "Answer my question from this result, in one plain sentence."
SKIPPED = "the user declined to run this call"
USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


@dataclass
class ToolRun:
    """One call the model asked for, and what came of it (``status``: asked, ran, failed,
    skipped, repeated, replayed)."""

    name: str
    arguments: str
    id: str = ""
    result: str | None = None
    status: str = "asked"
    key: str = ""  # where its result is kept in a ToolRecord (see ToolLoop)
    in_replayed_answer: bool = False  # the answer that made this call was replayed, not asked now

    def line(self) -> str:
        return f"{self.name}({self.arguments})"


@dataclass(frozen=True)
class StepReply:
    """One model call's outcome: its text, the calls it made (name, arguments as JSON text, id),
    its token usage, or the error that ended it."""

    text: str = ""
    calls: tuple[tuple[str, str, str], ...] = ()
    usage: Mapping[str, Any] | None = None
    error: BaseException | None = None
    replayed: bool = False  # the answer came from a record (a cache), not from the model now


class ToolRecord(Protocol):
    """Where the results of calls that ran are kept, for a replayed answer's calls."""

    def recall(self, key: str) -> tuple[str, str] | None:
        """The kept (result, status) under ``key``, or None."""

    def keep(self, key: str, result: str, status: str) -> None:
        """Keep a call's result (``status``: ran or failed)."""


Step = Callable[[list[dict[str, Any]], Sequence[FunctionTool]], StepReply]
Confirm = Callable[[ToolRun], Decision]


def run_every_call(call: ToolRun) -> Decision:
    """The confirm callback that runs every call (``--yes``)."""
    return "run"


def closing_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The history of the request that must be answered in text: the last tool result asks for
    the answer from it (:data:`FINAL_ASK`), inside that turn, right before the answer. Measured on
    the structured-output bench's 10 prompts with the 0.5B model: 10 of 10 answered from the
    result, against 3 of 10 with the same ask as the system line."""
    out = list(messages)
    if out and out[-1].get("role") in ("tool", "function"):
        out[-1] = {**out[-1], "content": f"{out[-1].get('content') or ''}\n\n{FINAL_ASK}"}
    return out


@dataclass
class ToolLoop:
    """One loop's state: the conversation, the calls, the answer, the summed usage."""

    step: Step
    tools: Mapping[str, FunctionTool]
    messages: list[dict[str, Any]]
    max_steps: int = 6
    calls: list[ToolRun] = field(default_factory=list)
    reply: StepReply | None = None
    steps: int = 0
    usage: dict[str, int] = field(default_factory=dict)
    done: bool = False
    stopped: str | None = None  # why the loop ended without an answer
    offer: bool = True  # offer the tools in the next request
    on_change: Callable[[ToolLoop], None] = lambda loop: None
    record: ToolRecord | None = None  # results kept for replayed answers (None: every call is decided anew)
    rerun_tools: bool = False  # run a replayed answer's calls again instead of replaying their results
    notice: str | None = None  # the model choice's word: the tool model picked, or one that calls tools unreliably

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, not {self.max_steps}")
        self.messages = list(self.messages)

    @property
    def pending(self) -> ToolRun | None:
        """The first call still waiting for a decision."""
        return next((c for c in self.calls if c.status == "asked"), None)

    @property
    def answer(self) -> str:
        """The final text (empty until the loop is done with one)."""
        return self.reply.text if self.done and self.reply is not None and self.reply.error is None else ""

    def advance(self, confirm: Confirm = run_every_call) -> None:
        """Ask and run until the model answers, the step cap is reached, or ``confirm`` says
        ``"wait"`` for a call (then :meth:`decide` resumes)."""
        while not self.done:
            call = self.pending
            if call is None:
                self._ask()
                continue
            if self._replay(call):
                continue
            decision = confirm(call)
            if decision == "wait":
                return
            self.decide(run=decision == "run")

    def decide(self, *, run: bool) -> None:
        """Run (or skip) the waiting call and put its result in the conversation."""
        call = self.pending
        if call is None:
            return
        if run:
            call.result, call.status = self._run(call)
            if self.record is not None and call.key:
                self.record.keep(call.key, call.result, call.status)
        else:
            call.result, call.status = SKIPPED, "skipped"
        self.messages.append({"role": "tool", "tool_call_id": call.id, "name": call.name, "content": call.result})
        self.on_change(self)

    @property
    def replayed(self) -> list[ToolRun]:
        """The calls whose recorded results were replayed instead of running them again."""
        return [c for c in self.calls if c.status == "replayed"]

    def _replay(self, call: ToolRun) -> bool:
        """Give a replayed answer's call its recorded result (not run, not asked); False when it
        has none or ``rerun_tools``."""
        if not call.in_replayed_answer or self.rerun_tools or self.record is None or not call.key:
            return False
        found = self.record.recall(call.key)
        if found is None:
            return False
        call.result, call.status = found[0], "replayed"
        self.messages.append({"role": "tool", "tool_call_id": call.id, "name": call.name, "content": call.result})
        self.on_change(self)
        return True

    def _key(self, name: str, arguments: str, index: int) -> str:
        tool = self.tools.get(name)
        described = tool.spec() if tool is not None else None
        blob = json.dumps([self.messages, name, arguments, index, described], sort_keys=True, default=str,
                          ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _run(self, call: ToolRun) -> tuple[str, str]:
        """The call's result text and status, run as a span in the data dir's trace table (the model
        calls made inside the tool nest under it)."""
        with tool_span(call.name, call.id) as span:
            result, status = self._call(call)
            if status == "failed":
                span.status = 500
        return result, status

    def _call(self, call: ToolRun) -> tuple[str, str]:
        """The call's result text and status; an error's text is the result (the model reads it)."""
        tool = self.tools.get(call.name)
        if tool is None:
            return f"error: no tool named {call.name!r}; the tools are {', '.join(self.tools)}", "failed"
        try:
            return tool.call(call.arguments), "ran"
        except ArgumentsError as exc:
            return f"error: arguments refused: {exc}", "failed"
        except Exception as exc:  # the model gets the error text as the tool's result (an interrupt passes)
            log.debug("tool %s failed", call.name, exc_info=True)
            return f"error: {type(exc).__name__}: {exc}", "failed"

    def _ask(self) -> None:
        self.steps += 1
        last = self.steps >= self.max_steps or not self.offer
        offered: Sequence[FunctionTool] = () if last else tuple(self.tools.values())
        reply = self.step(closing_messages(self.messages) if last else list(self.messages), offered)
        self.reply = reply
        for key in USAGE_KEYS:
            value = (reply.usage or {}).get(key)
            if isinstance(value, int):
                self.usage[key] = self.usage.get(key, 0) + value
        if reply.error is None and not reply.calls and not reply.text.strip() and offered and self.calls:
            self.offer = False  # an empty answer after tool results: the closing request asks for the answer
            self.on_change(self)
            return
        if reply.error is not None or not reply.calls or not offered:
            self.done = True
            if reply.error is None and not reply.text.strip():
                self.stopped = (f"no answer after {self.steps} model call(s): the model "
                                + ("kept calling tools" if self.calls else "gave an empty answer")
                                + (f" up to the step cap ({self.max_steps})" if self.steps >= self.max_steps else ""))
            self.on_change(self)
            return
        fresh: list[ToolRun] = []
        for index, (name, arguments, call_id) in enumerate(reply.calls):
            call = ToolRun(name, arguments, call_id or f"call_{len(self.calls) + len(fresh) + 1}",
                            key=self._key(name, arguments, index), in_replayed_answer=reply.replayed)
            if any(c.name == name and c.arguments == arguments and c.status in ("ran", "failed") for c in self.calls):
                call.status, self.offer = "repeated", False  # its result is already in the conversation
                self.calls.append(call)
            else:
                fresh.append(call)
        if fresh:
            self.messages.append({"role": "assistant", "content": reply.text or None, "tool_calls": [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in fresh]})
            self.calls.extend(fresh)
        self.on_change(self)
