"""Batch progress in a notebook: the core's bar (:mod:`qfnb._core.runtime.progress`) drawn as a widget.

The progress protocol, the text renderer and ``make_progress`` live in the core so every layer
resolves ``progress=`` the same way. The package root plugs the ipywidgets renderer
(:class:`qfnb.notebook.widgets.progress_bar.WidgetRenderer`) into the core
(:mod:`qfnb._core.plugins`); ipywidgets itself is imported only when a bar is drawn.
"""

from __future__ import annotations

from qfnb._core.runtime.progress import (
    Progress,
    ProgressCallback,
    ProgressSnapshot,
    make_progress,
)

__all__ = [
    "Progress",
    "ProgressCallback",
    "ProgressSnapshot",
    "make_progress",
]

