"""The Jupyter server's side of inline completions: ``POST {base_url}qfnb/inline-completions`` (and
``…/warm``), under the server's own authentication and XSRF check (a ``jupyter_server`` API handler).

The browser sends the text around the cursor, the notebook's earlier code cells, its path, kernel and
the cell's type and language (:class:`.wire.EditorAsk`). Only a code cell in the kernel's language is
completed. The handler asks the kernel for its names in scope (:mod:`.scope`: only an idle kernel,
only for a user the Authorizer lets execute code in kernels, never running the user's code), builds
the request (:mod:`.context`: a smaller context on a loaded machine), answers from its cache of
suggestions by context, or, while completions are on (``%qfcomplete``) and within what the server
allows (:mod:`.spending`: its daily caps, the user's rate, the notebook's budget read from the ledger),
asks the local coder model or a cloud model (:mod:`.backends`; secrets redacted from a cloud's context).

A suggestion has a deadline below the editor's timeout: one not written by then is withdrawn at the
engine. A request whose browser went away (the user typed on) is withdrawn too. Either is written in
the ledger as withdrawn (job ``inline-completion · withdrawn``, with the prompt's tokens), never as a
shown suggestion. Every completion is written under the notebook's kernel session, whether or not
qfnb was imported there. No key ever leaves this process.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler
from pydantic import ValidationError

from qfnb._core.record.ledger import under_session
from qfnb.notebook.complete import backends, scope, switch
from qfnb.notebook.complete.context import CONTEXT_TOKENS, FimRequest, finish_suggestion
from qfnb.notebook.complete.spending import Limits, Refused, Spending
from qfnb.notebook.complete.wire import EditorAsk, field_error
from qfnb.protocol.platform.usage_file import kernel_session

__all__ = ["CompleteHandler", "Completions", "Prepared", "Refused", "WarmHandler", "context_budget", "deadline"]

log = logging.getLogger("qfnb.notebook.complete")

#: suggestions kept by context
CACHE_SIZE = 512
#: the part of the editor's timeout a suggestion may take (the rest: the way back and the editor's own work)
DEADLINE_SHARE = 0.75


@dataclass
class Completions:
    """The handler's state in one Jupyter server: suggestions by context, each kernel's names by
    its last execution count, the helper's runs and the hold on spending."""

    cache: OrderedDict[str, str] = field(default_factory=OrderedDict)
    states: dict[str, tuple[int, scope.KernelState]] = field(default_factory=dict)
    scopes: scope.Scopes = field(default_factory=scope.Scopes)
    spending: Spending = field(default_factory=Spending)

    def remember(self, key: str, text: str) -> None:
        self.cache[key] = text
        while len(self.cache) > CACHE_SIZE:
            self.cache.popitem(last=False)


@dataclass(frozen=True)
class Prepared:
    """A completion ready to ask: the request, its cache key, the kernel's ledger session, whether a
    cloud model answers it, and the cached suggestion (None: not cached)."""

    completion: FimRequest
    key: str
    session: str | None
    cloud: bool
    cached: str | None


def deadline(timeout_ms: int) -> float:
    """Seconds a suggestion may take when the editor waits ``timeout_ms``."""
    return min(backends.TIMEOUT, timeout_ms / 1000 * DEADLINE_SHARE)


def context_budget(load: float | None = None, cores: int | None = None) -> int:
    """The earlier cells' token budget: the whole of :data:`CONTEXT_TOKENS` on a quiet machine, a half
    past one runnable process a core, a quarter past two (reading the context is most of a loaded
    engine's time)."""
    load = os.getloadavg()[0] if load is None else load
    per_core = load / max(1, cores or os.cpu_count() or 1)
    if per_core > 2:
        return CONTEXT_TOKENS // 4
    if per_core > 1:
        return CONTEXT_TOKENS // 2
    return CONTEXT_TOKENS


class CompleteHandler(APIHandler):
    """``POST``: one suggestion for the cursor of a notebook's code cell."""

    _task: asyncio.Future[Any] | None = None

    @property
    def completions(self) -> Completions:
        found: Completions = self.settings.setdefault("qfnb_completions", Completions())
        return found

    @tornado.web.authenticated
    async def post(self) -> None:
        ask = self.editor_ask()
        if not ask.is_code:  # a Markdown cell, a raw cell, another language: nothing
            self.finish({"items": []})
            return
        try:
            text, served = await self._suggest(ask)
        except Refused as refused:
            self.finish({"items": [], "notice": refused.notice, "message": str(refused)})
            return
        items = [{"insertText": text}] if text else []
        self.finish({"items": items, "model": served})

    def editor_ask(self) -> EditorAsk:
        """The request's body as the editor's typed ask (a 400 naming the field otherwise)."""
        body = self.get_json_body()
        if not isinstance(body, dict):
            raise tornado.web.HTTPError(400, "the body must be a JSON object")
        try:
            return EditorAsk.model_validate(body)
        except ValidationError as exc:
            raise tornado.web.HTTPError(400, field_error(exc)) from None

    def user_name(self) -> str:
        user = self.current_user
        return str(getattr(user, "username", None) or user or "")

    async def _prepare(self, ask: EditorAsk, max_tokens: int | None = None) -> Prepared:
        """The completion ``ask`` makes (its kernel's names, its context, redacted for a cloud model),
        and what the cache holds for it; :class:`Refused` when completions are off."""
        if not switch.enabled():
            raise Refused("off", "qfnb inline completions are off (%qfcomplete on turns them on)")
        manager, session = self._kernel(ask.kernel)
        state = await self._kernel_state(ask.kernel, manager, ask.executionCount)
        cloud = ask.model.startswith(backends.CLOUD_PREFIX)
        completion = FimRequest.of(ask.prefix, ask.suffix, ask.cells[-200:], state.names if state else "",
                                   budget=context_budget(), max_tokens=max_tokens or ask.maxTokens)
        if cloud:
            completion = completion.redacted()
        key = completion.key(ask.model)
        cached = self.completions.cache.get(key)
        if cached is not None:
            self.completions.cache.move_to_end(key)
        return Prepared(completion, key, session, cloud, cached)

    async def _hold(self, ask: EditorAsk, ready: Prepared) -> str:
        """Hold the completion's worst case within what the server allows (:class:`Refused` otherwise;
        the ledger is read off the server's event loop)."""
        spending = self.completions.spending
        worst = spending.worst(ready.completion.context_tokens(), ask.model.removeprefix(backends.CLOUD_PREFIX),
                               ready.cloud)
        return await asyncio.to_thread(spending.admit, self.user_name(), ready.session, worst, ask.dailyTokens)

    async def _suggest(self, ask: EditorAsk, max_tokens: int | None = None, *,
                       read_ahead: bool = False) -> tuple[str, str]:
        """The suggestion for ``ask`` (``read_ahead``: the notebook's context read into its engine slot,
        which no editor waits for: no deadline but the longest call's)."""
        ready = await self._prepare(ask, max_tokens)
        if ready.cached is not None:
            return ready.cached, ask.model or "cache"
        hold = await self._hold(ask, ready)
        try:
            with under_session(ready.session):
                found = await self._call(ready.completion, ask, ready.cloud, ready.session, read_ahead)
        finally:
            self.completions.spending.release(hold)
        text = finish_suggestion(found.text, ready.completion.prefix, ready.completion.suffix)
        self.completions.remember(ready.key, text)
        return text, found.model

    async def _call(self, completion: FimRequest, ask: EditorAsk, cloud: bool, session: str | None,
                    read_ahead: bool = False) -> backends.Suggestion:
        """The model's suggestion within the deadline; withdrawn (and written so) when late or left."""
        model = ask.model.removeprefix(backends.CLOUD_PREFIX)
        call = (backends.cloud(completion, model) if cloud
                else backends.local(completion, ask.model or None, ask.path or None))
        task: asyncio.Task[backends.Suggestion] = asyncio.ensure_future(call)
        self._task = task
        limit = backends.TIMEOUT if read_ahead else deadline(ask.timeout)
        try:
            found = await asyncio.wait_for(asyncio.shield(task), limit)
        except TimeoutError:
            task.cancel()
            backends.record_withdrawn(completion, ask.model, session, limit, late=True)
            raise Refused("late", f"the suggestion was not written within {limit:.1f} s (withdrawn)") from None
        except asyncio.CancelledError:
            backends.record_withdrawn(completion, ask.model, session, limit, late=False)
            raise Refused("withdrawn", "the editor moved on") from None
        except Exception as exc:  # the editor shows why, the notebook goes on
            log.warning("qfnb completion failed: %s", exc)
            raise Refused("failed", f"qfnb completion failed: {exc}") from exc
        if not cloud:
            backends.record_local(found, session)
        return found

    def _kernel(self, kernel: str) -> tuple[Any, str | None]:
        """The kernel's manager and its ledger session (None, None: no such kernel)."""
        if not kernel:
            return None, None
        try:
            manager = self.kernel_manager.get_kernel(kernel)
        except KeyError:
            return None, None
        pid = getattr(getattr(manager, "provisioner", None), "pid", None)
        return manager, kernel_session(kernel, pid) if isinstance(pid, int) else None

    async def _may_execute(self) -> bool:
        """Whether the Authorizer lets this user execute code in kernels (the helper is such code)."""
        allowed = self.authorizer.is_authorized(self, self.current_user, "execute", "kernels")
        return bool(await allowed if inspect.isawaitable(allowed) else allowed)

    async def _kernel_state(self, kernel: str, manager: Any, count: int) -> scope.KernelState | None:
        """The kernel's names (asked again once a cell ran; none from a busy kernel or for a user who
        may not execute code in kernels)."""
        if manager is None:
            return None
        known = self.completions.states.get(kernel)
        if known is not None and known[0] == count:
            return known[1]
        if not await self._may_execute():
            return None
        state = await self.completions.scopes.ask(kernel, manager)
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

    @tornado.web.authenticated
    async def post(self) -> None:
        self.finish(await self.warm(self.editor_ask()))

    async def warm(self, ask: EditorAsk) -> dict[str, Any]:
        """The notebook's context read ahead by the local model: ``{"warm": true}``, or why not."""
        if ask.model.startswith(backends.CLOUD_PREFIX):
            return {"warm": False, "notice": "cloud"}
        try:
            await self._suggest(ask.model_copy(update={"prefix": "", "suffix": ""}), max_tokens=1, read_ahead=True)
        except Refused as refused:
            return {"warm": False, "notice": refused.notice}
        return {"warm": True}


def limits_of(server_app: Any) -> Limits:
    """The server's limits on completions (its ``QfnbCompletions`` config section, the variables)."""
    section = server_app.config.get("QfnbCompletions") or {}
    return Limits.of(dict(section))
