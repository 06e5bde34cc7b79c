"""The Jupyter server's side of inline completions: ``POST {base_url}qfnb/complete``, under the
server's own authentication and XSRF check (a ``jupyter_server`` API handler).

The browser sends the text around the cursor, the notebook's earlier code cells, its path and kernel;
the handler asks the kernel for its names in scope (:mod:`.scope`), builds the request
(:mod:`.context`), answers from its cache of suggestions by context, or, while completions are on
(``%qfcomplete``), under the daily cap (the editor's setting) and the notebook's budget (its kernel's
``%qfusage --budget``), asks the local coder model or a cloud model (:mod:`.backends`). A request whose
browser went away (the user typed on) is cancelled, and the daemon withdraws it at the engine. The
answer holds the suggestion's text and the model's name; a refusal says why (``notice``), once per
reason in the editor. No key ever leaves this process.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler

from qfnb.notebook.complete import backends, scope, switch
from qfnb.notebook.complete.context import FimRequest, finish_suggestion
from qfnb.protocol.wires.completion import MAX_COMPLETION_TOKENS, MAX_CONTEXT_CHARS

__all__ = ["DAILY_TOKENS", "CompleteHandler", "Completions", "WarmHandler"]

log = logging.getLogger("qfnb.notebook.complete")

#: the daily cap on completions' tokens when the editor's setting names none
DAILY_TOKENS = 200_000
#: suggestions kept by context
CACHE_SIZE = 512


@dataclass
class Completions:
    """The handler's state in one Jupyter server: suggestions by context, each kernel's names by
    its last execution count, and the tokens each kernel's budget has yet to be charged."""

    cache: OrderedDict[str, str] = field(default_factory=OrderedDict)
    states: dict[str, tuple[int, scope.KernelState]] = field(default_factory=dict)
    uncharged: dict[str, int] = field(default_factory=dict)

    def remember(self, key: str, text: str) -> None:
        self.cache[key] = text
        while len(self.cache) > CACHE_SIZE:
            self.cache.popitem(last=False)


class Refused(Exception):
    """A completion not sent: ``notice`` is the reason's code, the message says it to the user."""

    def __init__(self, notice: str, message: str) -> None:
        super().__init__(message)
        self.notice = notice


def _count(body: dict[str, Any], name: str, default: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise tornado.web.HTTPError(400, f"{name}: a whole number of 0 or more, got {value!r}"[:200])
    return value


def _cells(body: dict[str, Any]) -> list[str]:
    cells = body.get("cells") or []
    if not isinstance(cells, list) or not all(isinstance(c, str) for c in cells):
        raise tornado.web.HTTPError(400, "cells: a list of the notebook's earlier code cells (strings)")
    return cells


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name, "")
    if not isinstance(value, str) or len(value) > MAX_CONTEXT_CHARS:
        raise tornado.web.HTTPError(400, f"{name}: a string of at most {MAX_CONTEXT_CHARS:,} characters")
    return value


class CompleteHandler(APIHandler):
    """``POST``: one suggestion for the cursor of a notebook's code cell."""

    _task: asyncio.Task[backends.Suggestion] | None = None

    @property
    def completions(self) -> Completions:
        found: Completions = self.settings.setdefault("qfnb_completions", Completions())
        return found

    @tornado.web.authenticated
    async def post(self) -> None:
        body = self.json_object()
        prefix, suffix = _text(body, "prefix"), _text(body, "suffix")
        cells = _cells(body)
        model = str(body.get("model") or "").strip()
        try:
            text, served = await self._suggest(body, prefix, suffix, cells, model)
        except Refused as refused:
            self.finish({"items": [], "notice": refused.notice, "message": str(refused)})
            return
        items = [{"insertText": text}] if text else []
        self.finish({"items": items, "model": served})

    async def _suggest(self, body: dict[str, Any], prefix: str, suffix: str, cells: list[str],
                       model: str) -> tuple[str, str]:
        if not switch.enabled():
            raise Refused("off", "qfnb inline completions are off (%qfcomplete on turns them on)")
        kernel = str(body.get("kernel") or "")
        state = await self._kernel_state(kernel, _count(body, "executionCount", 0))
        completion = FimRequest.of(prefix, suffix, cells[-200:], state.names if state else "",
                                   max_tokens=self.max_tokens(body))
        key = completion.key(model)
        if key in self.completions.cache:
            self.completions.cache.move_to_end(key)
            return self.completions.cache[key], model or "cache"
        self._check_spending(completion, kernel, state, _count(body, "dailyTokens", DAILY_TOKENS))
        if model.startswith(backends.CLOUD_PREFIX):
            call = backends.cloud(completion, model.removeprefix(backends.CLOUD_PREFIX))
        else:
            call = backends.local(completion, model or None, str(body.get("path") or "") or None)
        self._task = asyncio.ensure_future(call)
        try:
            found = await self._task
        except asyncio.CancelledError:
            raise Refused("withdrawn", "the editor moved on") from None
        except Exception as exc:  # the editor shows why, the notebook goes on
            log.warning("qfnb completion failed: %s", exc)
            raise Refused("failed", f"qfnb completion failed: {exc}") from exc
        if not model.startswith(backends.CLOUD_PREFIX):
            backends.record_local(found, state.session if state else None)
        if kernel:
            used = found.prompt_tokens + found.completion_tokens
            self.completions.uncharged[kernel] = self.completions.uncharged.get(kernel, 0) + used
        text = finish_suggestion(found.text, completion.prefix, completion.suffix)
        self.completions.remember(key, text)
        return text, found.model

    def json_object(self) -> dict[str, Any]:
        """The request's body, a JSON object (a 400 otherwise)."""
        body = self.get_json_body()
        if not isinstance(body, dict):
            raise tornado.web.HTTPError(400, "the body must be a JSON object")
        return body

    def max_tokens(self, body: dict[str, Any]) -> int:
        """The longest suggestion the editor asks for (its ``maxTokens`` setting)."""
        return min(MAX_COMPLETION_TOKENS, max(1, _count(body, "maxTokens", 64)))

    def _check_spending(self, completion: FimRequest, kernel: str, state: scope.KernelState | None,
                        cap: int) -> None:
        """Refuse a completion that could cross the daily cap or the notebook's budget."""
        worst = completion.context_tokens()
        today = switch.spent_today()
        if today.tokens + worst > cap:
            raise Refused("daily-cap", f"qfnb inline completions stopped for today: {today.tokens:,} of the daily "
                          f"{cap:,} tokens used (the Inline Completer's qfnb setting 'dailyTokens' raises it)")
        if state is not None and state.tokens_left is not None:
            left = state.tokens_left - self.completions.uncharged.get(kernel, 0)
            if worst > left:
                raise Refused("budget", f"qfnb inline completions paused: the notebook's budget has {max(0, left):,} "
                              f"tokens left and a completion may use {worst:,} (%qfusage --budget raises it)")

    async def _kernel_state(self, kernel: str, count: int) -> scope.KernelState | None:
        """The kernel's names (asked again once a cell ran), charging its budget what completions spent."""
        if not kernel:
            return None
        known = self.completions.states.get(kernel)
        if known is not None and known[0] == count:
            return known[1]
        try:
            manager = self.kernel_manager.get_kernel(kernel)
        except KeyError:
            return None
        charge = self.completions.uncharged.pop(kernel, 0)  # the helper runs even if it answers late
        state = await scope.kernel_state(manager, charge)
        if state is not None:
            self.completions.states[kernel] = (count, state)
        return state

    def on_connection_close(self) -> None:
        """The browser went away (the user typed on): the model call is cancelled, and the daemon
        withdraws it at the engine."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        super().on_connection_close()


class WarmHandler(CompleteHandler):
    """``POST``: a notebook opened in the editor. With the local coder model, a one-token completion
    with the notebook's earlier cells and its kernel's names as context: the daemon starts, the engine
    loads and the notebook's engine slot reads that context into its cache, so the first suggestion
    asked while typing reads only the cell's own text. Counted like any completion; a cloud model
    is not warmed (it would cost money for nothing), nor are completions that are off or over budget."""

    def max_tokens(self, body: dict[str, Any]) -> int:
        return 1

    @tornado.web.authenticated
    async def post(self) -> None:
        self.finish(await self.warm(self.json_object()))

    async def warm(self, body: dict[str, Any]) -> dict[str, Any]:
        """The notebook's context read ahead by the local model: ``{"warm": true}``, or why not."""
        model = str(body.get("model") or "").strip()
        if model.startswith(backends.CLOUD_PREFIX):
            return {"warm": False, "notice": "cloud"}
        cells = _cells(body)
        try:
            await self._suggest(body, "", "", cells, model)
        except Refused as refused:
            return {"warm": False, "notice": refused.notice}
        return {"warm": True}
