"""The live training dashboard: status, progress, ETA, loss chart, event log, Stop / Deploy.

Trainer events arrive on a background thread (Contract 5). They only update the
:class:`TrainingState`; rendering sets widget traits (thread-safe) at most every
``text_interval`` s, the PNG chart at most every ``chart_interval`` s, and once more, unthrottled,
when the job ends. Nothing here prints or calls ``display`` from a thread: the final static
snapshot goes through a display handle created in the cell, so the saved notebook keeps it.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as w
from IPython.display import display

from qfnb._core.throttle import Throttle
from qfnb.notebook import _fmt, charts
from qfnb.notebook.training_state import TrainingState

log = logging.getLogger("qfnb.notebook.dashboard")

_BADGE = {"pending": "#888", "running": "#1f77b4", "succeeded": "#2ca02c", "failed": "#d62728", "stopped": "#ff7f0e"}


class TrainingDashboard(w.VBox):
    """A fine-tune dashboard driven by :meth:`handle_event` and closed by :meth:`finish`."""

    def __init__(
        self,
        title: str = "fine-tune",
        *,
        on_stop: Callable[[], None] | None = None,
        on_deploy: Callable[[TrainingDashboard], None] | None = None,
        text_interval: float = 0.25,
        chart_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = TrainingState(title=title, clock=clock, started_at=clock())
        self._lock = threading.RLock()
        self._done = threading.Event()
        self._finishing = False
        self._text_throttle = Throttle(text_interval, clock)
        self._chart_throttle = Throttle(chart_interval, clock)
        self._chart_dirty = True
        self.on_stop, self.on_deploy = on_stop, on_deploy
        self.renders = 0  # number of (throttled) redraws, for tests and the overhead bench
        self.handle: Any = None
        self.snapshot_handle: Any = None
        self.trainer: Any = None  # set by whoever launched the job
        self.service: Any = None  # set by the Deploy button

        self.header = w.HTML()
        self.bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, layout=w.Layout(width="60%"))
        self.progress_label = w.HTML()
        self.chart = w.Image(format="png", layout=w.Layout(max_width="560px"))
        self.log_view = w.Textarea(layout=w.Layout(width="98%", height="110px"), disabled=True)
        self.stop_button = w.Button(description="Stop", icon="stop", button_style="danger", disabled=on_stop is None)
        self.deploy_button = w.Button(
            description="Deploy", icon="rocket", button_style="success", layout=w.Layout(display="none")
        )
        self.result = w.HTML()
        self.stop_button.on_click(self._clicked_stop)
        self.deploy_button.on_click(self._clicked_deploy)
        super().__init__(
            children=[
                self.header,
                w.HBox([self.bar, self.progress_label]),
                self.chart,
                w.Accordion(children=[self.log_view], titles=("event log",), selected_index=None),
                w.HBox([self.stop_button, self.deploy_button]),
                self.result,
            ]
        )
        self.add_class("qfnb-dashboard")
        self._render(force=True)

    # -- wiring ------------------------------------------------------------------------------
    def show(self) -> TrainingDashboard:
        """Display the widget and a (for now empty) static snapshot slot under it. Call from a cell."""
        self.handle = display(self, display_id=True)
        self.snapshot_handle = display({"text/plain": ""}, raw=True, display_id=True)
        return self

    def handle_event(self, event: Any) -> None:
        """Contract 5 entry point; safe from any thread."""
        with self._lock:
            if self._finishing:
                return
            if self.state.apply(event):
                self._chart_dirty = True
            self._render()

    def finish(self, status: str, *, output: Any = None, error: str | None = None) -> None:
        """Freeze the final state: last render, buttons, static HTML snapshot and text/plain."""
        with self._lock:
            if self._finishing:
                return
            self._finishing = True
            self.state.finish(status, output=output, error=error)
            self._chart_dirty = True
            self._render(force=True)
            self.stop_button.disabled = True
            self.stop_button.layout.display = "none"  # nothing left to stop
            can_deploy = status == "succeeded" and self.on_deploy is not None and not self.state.service
            self.deploy_button.layout.display = None if can_deploy else "none"
            self.chart.layout.display = "none" if self.snapshot_handle is not None else None
        self._publish_snapshot()
        self._done.set()

    def wait(self, timeout: float | None = None) -> TrainingState:
        """Block until the job ends (for "Run All"); returns the final state."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"fine-tune still {self.state.status} after {timeout} s")
        return self.state

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def trained_model_id(self) -> str | None:
        """The published model's id (``model_id`` is taken: it is the widget's comm id)."""
        return self.state.model_id

    def __repr__(self) -> str:
        return self.state.summary()

    # -- rendering (any thread) ----------------------------------------------------------------
    def _render(self, force: bool = False) -> None:
        st = self.state
        if not force and not self._text_throttle.ready():
            return
        self.renders += 1
        color = _BADGE.get(st.status, "#888")
        phase = f" · {_fmt.esc(st.phase)}" if st.phase and not st.finished else ""
        self.header.value = (
            f'<b>{_fmt.esc(st.title)}</b> <span class="qfnb-status" style="color:white;background:{color};'
            f'border-radius:4px;padding:1px 6px">{_fmt.esc(st.status)}</span>{phase}'
        )
        with self.bar.hold_sync():
            self.bar.value = st.progress or 0.0
            self.bar.bar_style = {"succeeded": "success", "failed": "danger", "stopped": "warning"}.get(st.status, "")
        self.progress_label.value = _fmt.esc(st.progress_text())
        self.log_view.value = "\n".join(st.log)
        self.result.value = self._result_html()
        if self._chart_dirty and (force or self._chart_throttle.ready()):
            self._chart_dirty = False
            self.chart.value = charts.loss_chart(st.loss, title=f"loss · {st.title}")

    def _result_html(self) -> str:
        st = self.state
        rows = []
        if st.model_id:
            rows.append(f"model <code>{_fmt.esc(st.model_id)}</code>")
        if st.service:
            rows.append(f"service <code>{_fmt.esc(st.service)}</code>")
        if st.error and st.status == "failed":
            rows.append(f'<span style="color:#d62728">error: {_fmt.esc(st.error)}</span>')
        return " · ".join(rows)

    def snapshot_html(self) -> str:
        st = self.state
        png = base64.b64encode(charts.loss_chart(st.loss, title=f"loss · {st.title}")).decode()
        color = _BADGE.get(st.status, "#888")
        return (
            f'<div class="qfnb-train-summary" style="border-left:4px solid {color};padding-left:8px">'
            f"<b>{_fmt.esc(st.title)}</b>: <b style='color:{color}'>{_fmt.esc(st.status)}</b> · "
            f"{_fmt.esc(st.progress_text())}<br>{self._result_html()}<br>"
            f'<img alt="loss chart" src="data:image/png;base64,{png}"/></div>'
        )

    def _publish_snapshot(self) -> None:
        if self.snapshot_handle is not None:
            self.snapshot_handle.update(
                {"text/plain": self.state.summary(), "text/html": self.snapshot_html()}, raw=True
            )
        if self.handle is not None:  # the widget's saved text/plain becomes the final summary
            self.handle.update(self)

    def mark_deployed(self, service: str) -> None:
        with self._lock:
            self.state.service = service
            self.state.note(f"deployed as {service}")
            self.deploy_button.layout.display = "none"
            self._render(force=True)
        self._publish_snapshot()

    def deploy_failed(self, message: str) -> None:
        with self._lock:
            self.state.note(f"deploy failed: {message}")
            self._render(force=True)  # the job has ended: no event will redraw the log
            self.deploy_button.disabled = False
            self.deploy_button.description = "Retry deploy"
            self.result.value = (
                self._result_html() + f' · <span style="color:#d62728">deploy failed: {_fmt.esc(message)}</span>'
            )

    # -- buttons (kernel main thread) ----------------------------------------------------------
    def _clicked_stop(self, _: Any) -> None:
        if self.on_stop is None or self.done:
            return
        self.stop_button.disabled = True
        self.stop_button.description = "Stopping…"
        with self._lock:
            self.state.note("stop requested")
        try:
            self.on_stop()
        except Exception as exc:  # shown in the dashboard, not raised into the widget comm
            log.warning("stop failed: %s", exc)
            with self._lock:
                self.state.note(f"stop failed: {exc}")
            self.stop_button.disabled = False
            self.stop_button.description = "Stop"

    def _clicked_deploy(self, _: Any) -> None:
        if self.on_deploy is None:
            return
        self.deploy_button.disabled = True
        self.deploy_button.description = "Deploying…"
        with self._lock:
            self.state.note("deploy requested")
            self._render(force=True)
        self.on_deploy(self)
