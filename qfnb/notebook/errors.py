"""The one exception the magics raise: shown as a single styled line, not a traceback."""

from __future__ import annotations

from typing import Any


class QfnbCellError(Exception):
    """A user-facing failure of a qfnb magic (the model call failed, a job is unknown, ...).

    IPython shows ``_render_traceback_`` instead of a traceback, so the cell fails visibly
    (an ``error`` output, red) with one readable line; the cause stays in ``__cause__``.
    """

    def __init__(self, message: str, *, title: str = "qfnb error") -> None:
        super().__init__(message)
        self.title = title

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[1;31m{self.title}\x1b[0m: {self}"]


class QfnbInterrupted(KeyboardInterrupt):
    """Kernel -> Interrupt during a qfnb call: one line (no traceback), the cell stops there.

    A ``KeyboardInterrupt`` still, so "Run All" stops at this cell as it would for any interrupt.
    """

    def __init__(self, message: str, *, title: str = "interrupted") -> None:
        super().__init__(message)
        self.title = title
        self.answers: list[Any] = []  # what the interrupted call had produced so far

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[1;33m{self.title}\x1b[0m: {self}"]
