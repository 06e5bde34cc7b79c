"""The streamed suggestion: ``POST {base_url}qfnb/inline-completions/stream`` (the editor's provider
reads it as JupyterLab's streamed inline completion: the first tokens show as ghost text while the
rest is written). Lines of JSON, each with the whole suggestion so far; within the deadline below the
editor's timeout; a stream the browser leaves, or one past its deadline, is withdrawn at the engine
and written in the ledger as withdrawn, never as a shown suggestion.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import tornado.web
from tornado.iostream import StreamClosedError

from qfnb._core.record.ledger import under_session
from qfnb.notebook.complete import backends
from qfnb.notebook.complete.context import finish_suggestion
from qfnb.notebook.complete.handler import CompleteHandler, Prepared, Refused, deadline
from qfnb.notebook.complete.wire import EditorAsk

__all__ = ["StreamHandler"]

log = logging.getLogger("qfnb.notebook.complete")


class StreamHandler(CompleteHandler):
    """``POST``: one suggestion, streamed as lines of JSON (``application/x-ndjson``): ``{"text": …}``
    with the whole suggestion so far as the engine writes it, then ``{"done": true, "text", "model"}``
    (or ``{"done": true, "notice", "message"}`` when refused). Within the deadline; a stream the
    browser leaves, or one past its deadline, is withdrawn at the engine and written as withdrawn."""

    @tornado.web.authenticated
    async def post(self) -> None:
        ask = self.editor_ask()
        self.set_header("Content-Type", "application/x-ndjson")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        if not ask.is_code:  # a Markdown cell, a raw cell, another language: nothing
            self.finish(_line({"done": True, "text": ""}))
            return
        try:
            ready = await self._prepare(ask)
            if ready.cached is not None:
                self.finish(_line({"done": True, "text": ready.cached, "model": "cache"}))
                return
            hold = await self._hold(ask, ready)
        except Refused as refused:
            self.finish(_line({"done": True, "text": "", "notice": refused.notice, "message": str(refused)}))
            return
        try:
            with under_session(ready.session):
                await self._stream(ask, ready)
        finally:
            self.completions.spending.release(hold)

    async def _stream(self, ask: EditorAsk, ready: Prepared) -> None:
        completion = ready.completion
        loop = asyncio.get_running_loop()
        limit = deadline(ask.timeout)
        ends = loop.time() + limit
        pieces: list[str] = []
        shown = ""
        stream = (_whole(backends.cloud(completion, ask.model.removeprefix(backends.CLOUD_PREFIX))) if ready.cloud
                  else backends.local_stream(completion, ask.model or None, ask.path or None))
        try:
            while True:
                self._task = asyncio.ensure_future(anext(stream))  # the browser leaving cancels it
                try:
                    piece = await asyncio.wait_for(asyncio.shield(self._task), max(0.0, ends - loop.time()))
                except TimeoutError:
                    self._task.cancel()
                    raise
                if isinstance(piece, backends.Suggestion):
                    break
                pieces.append(piece)
                text = finish_suggestion("".join(pieces), completion.prefix, completion.suffix)
                if text != shown:
                    shown = text
                    self.write(_line({"text": text}))
                    await self.flush()
        except (TimeoutError, StreamClosedError, StopAsyncIteration, asyncio.CancelledError) as stopped:
            await _closed(stream)
            late = isinstance(stopped, TimeoutError)
            took = loop.time() - (ends - limit)
            if late and shown:  # cut at its deadline: what showed in time is the suggestion (shown, and billed)
                backends.record_shown(completion, ask.model, ready.session, took, generated=len(pieces))
                self._end({"text": shown, "notice": "cut"})
                return
            backends.record_withdrawn(completion, ask.model, ready.session, took, late=late, generated=len(pieces))
            if late:
                self._end({"notice": "late", "message": f"the suggestion was not written within {limit:.1f} s "
                           "(withdrawn)"})
            return
        except Exception as exc:  # the editor shows why, the notebook goes on
            await _closed(stream)
            log.warning("qfnb completion failed: %s", exc)
            self._end({"notice": "failed", "message": f"qfnb completion failed: {exc}"})
            return
        if not ready.cloud:
            backends.record_local(piece, ready.session)
        text = finish_suggestion(piece.text, completion.prefix, completion.suffix)
        self.completions.remember(ready.key, text)
        self.finish(_line({"done": True, "text": text, "model": piece.model}))


    def _end(self, event: dict[str, Any]) -> None:
        """The stream's last line (nothing when the browser has gone): ``text`` "" unless ``event`` holds one."""
        with contextlib.suppress(StreamClosedError):
            self.finish(_line({"done": True, "text": "", **event}))


def _line(event: dict[str, Any]) -> str:
    return json.dumps(event) + "\n"


async def _whole(call: Awaitable[backends.Suggestion]) -> AsyncIterator[str | backends.Suggestion]:
    """A whole answer as a stream of one (a cloud model's)."""
    yield await call


async def _closed(stream: AsyncIterator[Any]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()
