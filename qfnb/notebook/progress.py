"""Batch progress in a notebook: the core's bar (:mod:`qfnb._core.runtime.progress`) drawn as a widget.

The progress protocol, the text renderer and ``make_progress`` live in the core so every layer
resolves ``progress=`` the same way. Importing this module (``qfnb.notebook`` does) registers
the ipywidgets renderer with the core; ipywidgets itself is imported only when a bar is drawn.
"""

from __future__ import annotations

from qfnb._core.runtime.progress import (
    Progress,
    ProgressArg,
    ProgressCallback,
    ProgressSnapshot,
    Renderer,
    TextRenderer,
    in_notebook_kernel,
    make_progress,
    register_widget_renderer,
)

__all__ = [
    "Progress",
    "ProgressArg",
    "ProgressCallback",
    "ProgressSnapshot",
    "TextRenderer",
    "in_notebook_kernel",
    "make_progress",
]


def _widget_renderer(desc: str) -> Renderer:
    from qfnb.notebook.widgets.progress_bar import WidgetRenderer

    return WidgetRenderer(desc)


register_widget_renderer(_widget_renderer)
