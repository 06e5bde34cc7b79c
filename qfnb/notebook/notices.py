"""qfnb's notices in a notebook: one clean line under the cell, not a Python warning.

A model name the cloud renamed (:class:`~qfnb.resources.inference.targets.RenamedModelWarning`) or
one the local platform answers with a local model (``LocalModelWarning``) is said with
:func:`warnings.warn`, which a notebook shows as ``/path/to/qfnb/....py:95: RenamedModelWarning: ...``
on a red background. Once ``%load_ext qfnb`` ran, those two are kept (whichever thread raised
them: a chat streams on qfnb's loop) and shown after the cell as ``qfnb: <message>``; every other
warning goes on to the handler that was there before.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import warnings
from collections.abc import Callable
from typing import Any

from qfnb.notebook._ipython import live_display
from qfnb.notebook.render import theme
from qfnb.resources.safe_html import clean, escape

__all__ = ["NOTICES", "Notices", "is_notice", "notice_bundle", "register", "unregister"]

#: the warnings a notebook shows as a notice line: (module, class); read from the module once it is
#: loaded (only then can it warn), so ``%load_ext qfnb`` loads no client module
NOTICES = (("qfnb.resources.inference.targets", "RenamedModelWarning"),
           ("qfnb._core.http.recording.substitution", "LocalModelWarning"))


def is_notice(category: type[Warning]) -> bool:
    """Whether ``category`` is one of qfnb's :data:`NOTICES`."""
    return any((module := sys.modules.get(name)) is not None and issubclass(category, getattr(module, kind))
               for name, kind in NOTICES)


def notice_bundle(text: str) -> dict[str, str]:
    """A notice's output: ``qfnb: <text>`` as plain text, and as a quiet line of HTML."""
    return {"text/plain": f"qfnb: {text}",
            "text/html": clean(f'<div class="qfnb-notice" style="color:{theme.TEXT_MUTED};font-size:90%">'
                               f"ⓘ qfnb: {escape(text)}</div>")}


class Notices:
    """Catches qfnb's notices (``warnings.showwarning``) and shows them after the cell."""

    def __init__(self, previous: Callable[..., Any], show: Callable[[dict[str, str]], Any]) -> None:
        self._previous, self._show = previous, show
        self._pending: list[str] = []
        self._lock = threading.Lock()

    def showwarning(self, message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    file: Any = None, line: str | None = None) -> None:
        if is_notice(category):
            with self._lock:
                self._pending.append(str(message))
            return
        self._previous(message, category, filename, lineno, file, line)

    def flush(self, *_: Any) -> None:
        """Show what was said since the last flush (each once)."""
        with self._lock:
            said, self._pending = list(dict.fromkeys(self._pending)), []
        for text in said:
            self._show(notice_bundle(text))


def register(ipython: Any) -> Notices:
    """Show qfnb's notices under the cell that caused them (after it ran)."""
    previous = warnings.showwarning
    if isinstance(getattr(previous, "__self__", None), Notices):  # %reload_ext: not twice
        previous = previous.__self__._previous  # type: ignore[attr-defined]
    notices = Notices(previous, lambda bundle: live_display(bundle, raw=True))
    warnings.showwarning = notices.showwarning
    ipython.events.register("post_run_cell", notices.flush)
    return notices


def unregister(ipython: Any) -> None:
    """Put back the warning handler :func:`register` found (nothing when it is not installed)."""
    notices = getattr(warnings.showwarning, "__self__", None)
    if isinstance(notices, Notices):
        warnings.showwarning = notices._previous
        with contextlib.suppress(ValueError):
            ipython.events.unregister("post_run_cell", notices.flush)
