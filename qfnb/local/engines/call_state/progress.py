"""Where one model call is now: received, loading its model, queued for a slot, generating, done.

The server's keyed-call middleware (``qfnb.local.server.middleware.idempotency``) gives each call it runs a
:class:`CallProgress` and :func:`bind` s it to the call's task; the places that know a phase mark it
on the task's progress, if any (a contextvar read: nothing else is done for a call without one):
the registry's first load and an engine's start (:func:`loading`), the admission gates (queued, then
on a slot), the serving flow (the tokens so far, read only when someone asks:
:meth:`CallProgress.follow`). ``GET /qfnb/calls/{key}`` answers :meth:`CallProgress.snapshot`
(the wire's fields: :mod:`qfnb.protocol.wires.local.call_progress`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from qfnb.protocol.wires.local.call_progress import Phase

__all__ = ["CallProgress", "bind", "current", "loading"]

_current: ContextVar[CallProgress | None] = ContextVar("qfnb_call_progress", default=None)


class CallProgress:
    """One call's phase and the seconds it spent in each (monotonic clock), and its tokens so far."""

    __slots__ = ("_counts", "_phase_at", "_tokens", "clock", "ended", "loading_s", "phase", "queued_s", "slot_at",
                 "started")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self.phase: Phase = "received"
        self._phase_at = self.started
        self.loading_s = self.queued_s = 0.0
        self.slot_at: float | None = None  # when it got an engine slot
        self.ended: float | None = None
        self._counts: list[Callable[[], int]] = []
        self._tokens = 0  # the count at its end (its readers dropped: they hold the answer's pieces)

    def _enter(self, phase: Phase) -> None:
        now = self.clock()
        if self.phase == "queued":
            self.queued_s += now - self._phase_at
        elif self.phase == "loading":
            self.loading_s += now - self._phase_at
        self.phase, self._phase_at = phase, now

    def queued(self) -> None:
        """It waits for an engine slot."""
        self._enter("queued")

    def on_slot(self) -> None:
        """It runs on an engine slot (its prompt read, then its answer written)."""
        self._enter("generating")
        self.slot_at = self._phase_at

    def follow(self, tokens: Callable[[], int]) -> None:
        """Count ``tokens()`` (one answer's tokens so far, read when asked) among the call's."""
        self._counts.append(tokens)

    @property
    def tokens(self) -> int:
        return self._tokens + sum(count() for count in self._counts)

    def end(self, *, failed: bool) -> None:
        """The call's answer ended: its figures stay as they are now (kept with its answer)."""
        if self.ended is None:
            self._enter("failed" if failed else "done")
            self.ended = self._phase_at
            self._tokens, self._counts = self.tokens, []

    def snapshot(self) -> dict[str, Any]:
        """The wire's answer (:data:`qfnb.protocol.wires.local.call_progress.FIELDS`), times to a tenth of a second."""
        now = self.clock() if self.ended is None else self.ended
        loading, queued = self.loading_s, self.queued_s
        if self.phase == "loading":
            loading += now - self._phase_at
        elif self.phase == "queued":
            queued += now - self._phase_at
        generating = 0.0 if self.slot_at is None else now - self.slot_at
        return {"phase": self.phase, "elapsedSeconds": round(now - self.started, 1),
                "loadingSeconds": round(loading, 1), "queuedSeconds": round(queued, 1),
                "generatingSeconds": round(generating, 1), "tokens": self.tokens}


def current() -> CallProgress | None:
    """The progress of the call this task serves (None: no keyed call, or no request at all)."""
    return _current.get()


def bind(progress: CallProgress) -> None:
    """Make ``progress`` the current task's (call it at the top of the call's own task)."""
    _current.set(progress)


def loading() -> contextlib.AbstractContextManager[None]:
    """The block may start the call's model (a first load, an engine process started): the call is
    ``loading`` while it runs, then back where it was (a shared no-op for a call with no progress)."""
    progress = _current.get()
    return _NOTHING if progress is None else _Loading(progress)


class _Loading:
    __slots__ = ("before", "progress")

    def __init__(self, progress: CallProgress) -> None:
        self.progress, self.before = progress, progress.phase

    def __enter__(self) -> None:
        self.progress._enter("loading")

    def __exit__(self, *exc: object) -> None:
        if self.progress.phase == "loading":
            self.progress._enter(self.before)


_NOTHING: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
