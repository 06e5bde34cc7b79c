"""The ipywidgets rendering of :class:`qfnb.notebook.widgets.progress.Progress`.

The bar's output carries its state as static HTML too (refreshed every ``FALLBACK_INTERVAL`` s
while it runs, final when it closes) for viewers without a widget manager; a bar cut short by a
kernel restart keeps its last state, without broken-link icons (:data:`theme.OFFLINE_CSS`).
"""

from __future__ import annotations

import time
from typing import Any

import ipywidgets as w

from qfnb._core.http.throttle import Throttle
from qfnb._core.record.ledger import figures
from qfnb._core.runtime.progress import ProgressSnapshot
from qfnb.notebook._ipython import display
from qfnb.notebook.render import theme
from qfnb.notebook.render._ipywidgets import HBox, SafeHTML
from qfnb.resources.safe_html import clean, escape

FALLBACK_INTERVAL = 10.0


class ProgressBox(HBox):
    """``HBox(label, FloatProgress, meter)`` whose text/plain is the current meter."""

    def __init__(self, desc: str, **kwargs: Any) -> None:
        self.label = SafeHTML(value=f"<b>{escape(desc)}</b>")
        self.bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, layout=w.Layout(width="40%"))
        self.meter = SafeHTML(value="")
        self.text = desc
        self.static = clean(f'<div class="qfnb-progress-static" style="color:{theme.TEXT}"><b>{escape(desc)}</b>'
                            "</div>")
        offline = SafeHTML(value=theme.offline_note('<span style="white-space:nowrap">· the kernel restarted</span>'))
        super().__init__(children=[self.label, self.bar, self.meter, offline], **kwargs)
        self.add_class("qfnb-progress").add_class("qfnb-live")

    def __repr__(self) -> str:
        return self.text

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The widget, its state as static HTML (for viewers without a widget manager) and text."""
        return {**(super()._repr_mimebundle_(**kwargs) or {}), "text/plain": self.text, "text/html": self.static}


class WidgetRenderer:
    """Displays the box once (with a display id) and updates its traits, throttled by the caller."""

    def __init__(self, desc: str) -> None:
        self.since = time.time()  # the calls this bar counts were recorded from now on
        self.box = ProgressBox(desc)
        self.handle = display(self.box, display_id=True)
        self._fallback = Throttle(FALLBACK_INTERVAL)  # (the first render republishes: the count appears)

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
        box.meter.value = f'<span style="white-space:nowrap">{escape(snap.meter().split(": ", 1)[-1])}</span>'
        box.static = static_html(snap, final=False)
        if self.handle is not None and self._fallback.ready():
            self.handle.update(box)  # the saved notebook's fallback follows the bar

    def close(self, snap: ProgressSnapshot) -> None:
        self.render(snap)
        incomplete = snap.total is not None and snap.finished < snap.total
        self.box.bar.bar_style = "danger" if incomplete else ("warning" if snap.failed else "success")
        if snap.fraction is None and snap.finished:
            self.box.bar.value = 1.0
        note = replay_note(self.since, snap.finished)
        if note:  # a replay's speed is the cache's: the bar says so
            self.box.text += f" · {note}"
            self.box.meter.value += " " + _note_html(note)
        if self.handle is not None:  # the widget becomes its final static state (kept by saved notebooks)
            self.handle.update({"text/plain": self.box.text, "text/html": static_html(snap, note=note)}, raw=True)


def _note_html(note: str) -> str:
    return f'<span class="qfnb-replayed" style="color:{theme.TEXT_MUTED}">· {escape(note)}</span>'


def replay_note(since: float, finished: int) -> str:
    """What the bar's calls were when some were not generated (:class:`~qfnb._core.record.ledger.Figures`:
    ``2 calls generated 310 tokens · ↺ 18 replayed from the cache (2,790 tokens saved)``), with how
    to ask again; "" when every call was generated. The figures count calls (a callable's own
    embedding calls too), never the bar's items."""
    try:
        found = figures(since)
    except Exception:  # the ledger is a record, never a reason for a bar to fail
        return ""
    if not finished or not (found.replayed or found.reused):
        return ""
    return f"{found.line()} · to ask again: --fresh on a magic, cache=\"refresh\" on a call"


def static_html(snap: ProgressSnapshot, *, final: bool = True, note: str = "") -> str:
    """A bar as plain HTML: what a saved notebook, nbviewer or an HTML export shows (``final``:
    it has closed, so a short count is a failure; otherwise it is running)."""
    frac = snap.fraction if snap.fraction is not None else (1.0 if snap.finished else 0.0)
    incomplete = snap.total is not None and snap.finished < snap.total
    status = ("failed" if incomplete else ("stopped" if snap.failed else "succeeded")) if final else "running"
    color = theme.STATUS[status]
    return clean(
        f'<div class="qfnb-progress-static" style="display:flex;align-items:center;gap:8px;color:{theme.TEXT}">'
        f"<b>{escape(snap.desc)}</b>"
        f'<span style="display:inline-block;width:40%;height:8px;border:1px solid {theme.BORDER};border-radius:4px">'
        f'<span style="display:block;height:100%;width:{frac:.1%};background:{color};border-radius:3px"></span></span>'
        f"<span>{escape(snap.meter().split(': ', 1)[-1])}</span>"
        f"{_note_html(note) if note else ''}"
        f"{'' if final else _snapshot_time()}</div>"
    )


def _snapshot_time() -> str:
    """A running bar's static state says when it was true: no kernel updates it once its own is gone."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return f'<span class="qfnb-as-of" style="color:{theme.TEXT_MUTED}">· snapshot {stamp}, not live</span>'
