"""The ipywidgets rendering of :class:`qfnb.notebook.progress.Progress`."""

from __future__ import annotations

from typing import Any

import ipywidgets as w
from IPython.display import display

from qfnb._core.progress import ProgressSnapshot
from qfnb.notebook import _fmt, _theme


class ProgressBox(w.HBox):
    """``HBox(label, FloatProgress, meter)`` whose text/plain is the current meter."""

    def __init__(self, desc: str, **kwargs: Any) -> None:
        self.label = w.HTML(value=f"<b>{_fmt.esc(desc)}</b>")
        self.bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, layout=w.Layout(width="40%"))
        self.meter = w.HTML(value="")
        self.text = desc
        super().__init__(children=[self.label, self.bar, self.meter], **kwargs)

    def __repr__(self) -> str:
        return self.text


class WidgetRenderer:
    """Displays the box once (with a display id) and updates its traits, throttled by the caller."""

    def __init__(self, desc: str) -> None:
        self.box = ProgressBox(desc)
        self.handle = display(self.box, display_id=True)

    def render(self, snap: ProgressSnapshot) -> None:
        box = self.box
        box.text = snap.meter()
        frac = snap.fraction
        with box.bar.hold_sync():
            if frac is None:  # unknown total: an indeterminate-looking bar
                box.bar.bar_style = "info"
                box.bar.value = 1.0 if snap.finished else 0.0
            else:
                box.bar.value = frac
        box.meter.value = _fmt.esc(snap.meter().split(": ", 1)[-1])

    def close(self, snap: ProgressSnapshot) -> None:
        self.render(snap)
        incomplete = snap.total is not None and snap.finished < snap.total
        self.box.bar.bar_style = "danger" if incomplete else ("warning" if snap.failed else "success")
        if snap.fraction is None and snap.finished:
            self.box.bar.value = 1.0
        if self.handle is not None:  # the widget becomes its final static state (kept by saved notebooks)
            self.handle.update({"text/plain": self.box.text, "text/html": static_html(snap)}, raw=True)


def static_html(snap: ProgressSnapshot) -> str:
    """A finished bar as plain HTML: what a saved notebook, nbviewer or an HTML export shows."""
    frac = snap.fraction if snap.fraction is not None else (1.0 if snap.finished else 0.0)
    incomplete = snap.total is not None and snap.finished < snap.total
    color = _theme.STATUS["failed" if incomplete else ("stopped" if snap.failed else "succeeded")]
    return (
        f'<div class="qfnb-progress-static" style="display:flex;align-items:center;gap:8px;color:{_theme.TEXT}">'
        f"<b>{_fmt.esc(snap.desc)}</b>"
        f'<span style="display:inline-block;width:40%;height:8px;border:1px solid {_theme.BORDER};border-radius:4px">'
        f'<span style="display:block;height:100%;width:{frac:.1%};background:{color};border-radius:3px"></span></span>'
        f"<span>{_fmt.esc(snap.meter().split(': ', 1)[-1])}</span></div>"
    )
