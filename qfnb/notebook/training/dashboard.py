"""The live training dashboard: status, progress, ETA, loss chart, event log, Stop / Deploy.

Trainer events arrive on a background thread (Contract 5). They only update the
:class:`TrainingState`; rendering sets widget traits (thread-safe) at most every
``text_interval`` s, the PNG chart at most every ``chart_interval`` s, and once more, unthrottled,
when the job ends. Nothing here prints or calls ``display`` from a thread: the display handle
is created in the cell. When the job ends, the output that showed the live widget is *replaced*
by the final state as static HTML (+ text/plain), so the cell shows one dashboard and a saved
notebook reopened without a kernel (or exported to HTML) shows that final state, not a broken
widget — except while Deploy is the next step: then the widget stays (its Deploy button), with
the final static state beside it in the same output, until the model is deployed. Each next step
is a command for THIS job (:meth:`TrainingDashboard.hints`).

While the job runs, the widget's output also carries its state as static HTML (refreshed when
the status or phase changes and every ``fallback_interval`` s), which a saved notebook shows
where no widget manager runs (nbviewer, GitHub, an HTML export, an untrusted notebook). If the
kernel restarts mid-job, the old cell keeps the widget's last state and :data:`theme.OFFLINE_CSS`
turns it into a plain static view: no broken-link icons or dead buttons, and a line saying how
to follow the job (``%qftrain --attach task-…``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import ipywidgets as w

from qfnb._core.errors import TimeoutError as QfnbTimeoutError
from qfnb._core.http.throttle import Throttle
from qfnb.notebook._ipython import DisplayHandle, display
from qfnb.notebook.errors import QfnbInterrupted
from qfnb.notebook.render import theme
from qfnb.notebook.render._ipywidgets import SafeHTML, VBox
from qfnb.notebook.training import dashboard_html as draw
from qfnb.notebook.training.dashboard_html import TRAINING_FILE_WARNING
from qfnb.notebook.training.state import TrainingState
from qfnb.notebook.widgets.deploy_view import follow_deploy
from qfnb.resources.safe_html import escape
from qfnb.trainer import LLMFinetune
from qfnb.trainer.event import Event

__all__ = ["TRAINING_FILE_WARNING", "Trained", "TrainingDashboard"]

log = logging.getLogger("qfnb.notebook.dashboard")


class Trained(Protocol):
    """What a dashboard reads of its job (an ``LLMFinetune``, an attached task): what it published."""

    @property
    def output(self) -> Mapping[str, Any] | None: ...


class TrainingDashboard(VBox):
    """A fine-tune dashboard driven by :meth:`handle_event` and closed by :meth:`finish`."""

    def __init__(
        self,
        title: str = "fine-tune",
        *,
        on_stop: Callable[[], None] | None = None,
        on_deploy: Callable[[TrainingDashboard], Any] | None = None,
        text_interval: float = 0.25,
        chart_interval: float = 1.0,
        fallback_interval: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = TrainingState(title=title, clock=clock, started_at=clock())
        self._lock = threading.RLock()
        self._done = threading.Event()
        self._finishing = False
        self._text_throttle = Throttle(text_interval, clock)
        self._chart_throttle = Throttle(chart_interval, clock)
        self._chart_dirty = True
        self._fallback_throttle = Throttle(fallback_interval, clock)
        self._fallback_key: tuple[str, str] | None = None  # (status, phase) of the last published fallback
        self.on_stop, self.on_deploy = on_stop, on_deploy
        self.renders = 0  # number of (throttled) redraws, for tests and the overhead bench
        self.handle: DisplayHandle | None = None
        self.more_handles: list[DisplayHandle] = []  # later displays of this same dashboard (a second --attach)
        self.republish_pending = False  # the final state was published from the loop (see republish)
        self.deploy_when_done = False  # %qftrain --attach TASK --deploy on a running task
        self.eval_data: str | None = None  # the job's held-out data (else its training data), for the %qfeval hint
        self.eval_is_training = False  # eval_data is the training file: the hint warns
        self.shown_in: Any = None  # the widget whose output holds this one (the launcher form), if any
        self.launched_as: str | None = None  # the %qftrain line a launcher form ran (shown above the job)
        self.trainer: Trained | None = None  # set by whoever launched the job
        self.service: Any = None  # set by the Deploy button
        self.deploy_state = ""  # the deploying service's last state
        self.deploying: Any = None  # the deploy in flight (what on_deploy returned)

        self.header = SafeHTML()
        self.bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, layout=w.Layout(width="45%"))
        self.progress_label = SafeHTML()
        self.chart = w.Image(format="png", layout=w.Layout(max_width="560px"))
        self.log_view = w.Textarea(layout=w.Layout(width="98%", height="110px"), disabled=True)
        self.stop_button = w.Button(description="Stop", icon="stop", button_style="danger", disabled=on_stop is None)
        self.deploy_button = w.Button(
            # as wide as its words: "Deploy best (step 16)" was cut to "Deploy best (s…" at the default width
            description="Deploy", icon="rocket", button_style="success", layout=w.Layout(display="none", width="auto")
        )
        # a preference run's "does the tuned model win?" (LLMFinetune.compare), once the run succeeded
        self.compare_button = w.Button(description="Compare with base", icon="balance-scale",
                                       layout=w.Layout(display="none", width="auto"))
        self.compare_view = SafeHTML()
        self.comparison: Any = None  # the last PreferenceComparison the button made
        self.result = SafeHTML()
        self.offline = SafeHTML()  # shown only after a kernel restart (CSS on ipywidgets' disconnected class)
        self.var_name: str | None = None  # the -o variable, for the copyable next steps
        #: ``%qftrain --forecast`` (or a budget): the run's TrainForecast, put beside the run when it ends
        self.forecast: Any = None
        self.launch_name: str | None = None  # the name given at launch: the deployed service's and endpoint's
        self.stop_button.on_click(self._clicked_stop)
        self.deploy_button.on_click(self._clicked_deploy)
        self.compare_button.on_click(self._clicked_compare)
        super().__init__(
            children=[
                self.header,
                w.HBox([self.bar, self.progress_label]),
                self.chart,
                w.Accordion(children=[self.log_view], titles=("event log",), selected_index=None),
                w.HBox([self.stop_button, self.deploy_button, self.compare_button]).add_class("qfnb-live-only"),
                self.result,
                self.compare_view,
                self.offline,
            ]
        )
        self.add_class("qfnb-dashboard").add_class("qfnb-live")
        self._render(force=True)

    # -- wiring ------------------------------------------------------------------------------
    def show(self) -> TrainingDashboard:
        """Display the widget (its output turns static when the job ends). Call from a cell."""
        shown = display(self, display_id=True)
        if self.handle is None:
            self.handle = shown
        elif shown is not None:  # the same dashboard again: both outputs follow the job, both end in its final state
            self.more_handles.append(shown)
        if self.done:
            self._publish_snapshot()
        self._fallback_key = (self.state.status, self.state.doing)
        self._fallback_throttle.ready()  # the display above is the first fallback
        return self

    def deploy(self, wait: bool = True) -> Any:
        """Deploy the trained model (what the Deploy button does), e.g. ``run.deploy()``: this cell
        shows how the deploy goes and then the endpoint; returns the service (``wait=False``: the
        deploy's future at once). Kernel -> Interrupt stops the wait, not the deploy."""
        if not self.done or self.state.status != "succeeded":
            raise RuntimeError(f"the fine-tune is {self.state.status}; only a succeeded one can be deployed")
        if self.on_deploy is None:
            raise RuntimeError("this dashboard has no deploy action")
        if self.service is not None:
            return self.service

        future = self._clicked_deploy(None)
        return follow_deploy(self, future) if wait else future

    async def deploy_tick(self, info: dict[str, Any]) -> None:
        """A deploy's poll (the service's state): noted once per change, shown in the dashboard."""
        state = str(info.get("serviceStatus") or info.get("status") or info.get("state") or "")
        if state and state != self.deploy_state:
            self.deploy_state = state
            with self._lock:
                self.state.note(f"deploy: service {state}")
                self._render(force=True)

    def handle_event(self, event: Event) -> None:
        """Contract 5 entry point; safe from any thread."""
        with self._lock:
            if self._finishing:
                return
            if self.state.apply(event):
                self._chart_dirty = True
            self._render()

    def finish(self, status: str, *, output: Any = None, error: str | None = None,
               ended_at: float | None = None) -> None:
        """Freeze the final state: last render, buttons, static HTML snapshot and text/plain."""
        with self._lock:
            if self._finishing:
                return
            self._finishing = True
            self.state.finish(status, output=output, error=error, ended_at=ended_at)
            if self.forecast is not None:  # %qftrain --forecast: the run beside it
                self.state.note(self.forecast.versus(task_id=self.state.task_id, steps=self.state.total_steps,
                                                     seconds=self.state.elapsed_now))
            self.stop_button.disabled = True
            self.stop_button.layout.display = "none"  # nothing left to stop
            self.deploy_button.layout.display = None if self.deployable else "none"
            self.compare_button.layout.display = None if self.comparable else "none"
            best = self.state.best
            if best is not None:  # what a click deploys (DeployConfig's default: the best checkpoint)
                self.deploy_button.description = f"Deploy best (step {best['step']})"
            self._chart_dirty = True
            self._render(force=True)  # after the buttons: "succeeded" never shows beside a Stop
        self._publish_snapshot()
        self._done.set()

    def wait(self, timeout: float | None = None) -> TrainingState:
        """Block until the job ends (for "Run All"); returns the final state.

        Kernel -> Interrupt ends the wait with one line; the job itself keeps running."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:  # short waits: an interrupt is seen within 0.25 s on any platform
            while not (ended := self._done.wait(0.25)) and (deadline is None or time.monotonic() < deadline):
                pass
        except KeyboardInterrupt:
            raise QfnbInterrupted(
                f"stopped waiting; the fine-tune is still {self.state.status} in the background "
                "(call .wait() again, or press Stop)", title="wait interrupted") from None
        if not ended:
            raise QfnbTimeoutError(f"fine-tune still {self.state.status} after {timeout} s")
        return self.state

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def trained_model_id(self) -> str | None:
        """The published model's id (``model_id`` is taken: it is the widget's comm id)."""
        return self.state.model_id

    def __repr__(self) -> str:
        return self.summary_text()

    # -- rendering (any thread) ----------------------------------------------------------------
    def _render(self, force: bool = False) -> None:
        st = self.state
        if not force and not self._text_throttle.ready():
            return
        self.renders += 1
        self.header.value = draw.header_html(st, self.launched_as)
        with self.bar.hold_sync():
            self.bar.value = st.progress or 0.0
            self.bar.bar_style = {"succeeded": "success", "failed": "danger", "stopped": "warning"}.get(st.status, "")
        self.progress_label.value = f'<span style="white-space:nowrap">{escape(st.progress_text())}</span>'
        self.log_view.value = "\n".join(st.log)
        self.result.value = self._result_html()
        self.offline.value = draw.offline_html(st)
        if self._chart_dirty and (force or self._chart_throttle.ready()):
            self._chart_dirty = False
            self.chart.value = draw.loss_chart(st)

        self._refresh_fallback()

    def _refresh_fallback(self) -> None:
        """Republish the live output (widget + current static HTML) on a status or phase change, and
        every ``fallback_interval`` s, so a saved notebook's fallback is never far behind."""
        key = (self.state.status, self.state.doing)
        if self.handle is None or self._finishing or not (self._fallback_throttle.ready() or key != self._fallback_key):
            return
        self._fallback_key = key
        for handle in self._handles():
            handle.update(self.shown_in or self)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The widget, its state as static HTML (for viewers without a widget manager) and text."""
        data = dict(super()._repr_mimebundle_(**kwargs) or {})
        data["text/html"] = self.snapshot_html(chart=self.chart.value or None)
        data["text/plain"] = self.summary_text()
        return data

    def _result_html(self) -> str:
        live = not (self.done or self._finishing)
        return draw.result_html(self.state, self.hints(), live=live, eval_is_training=self.eval_is_training)

    def snapshot_html(self, chart: bytes | None = None) -> str:
        """The state as static HTML (what replaces the widget when the job ends); ``chart``: a
        PNG already drawn (else the loss chart is drawn now)."""
        return draw.snapshot_html(self.state, chart=chart or draw.loss_chart(self.state),
                                  header=draw.header_html(self.state, self.launched_as), result=self._result_html())

    def summary_text(self) -> str:
        """The text/plain form: the launched line (when a form launched it), then the state."""
        launched = f"launched as: {self.launched_as}\n" if self.launched_as else ""
        return launched + self.state.summary()

    def hints(self) -> list[str]:
        """Every command this dashboard shows now, each doing its step for THIS job: while it runs,
        how to follow it after a restart; once it succeeded, deploy it, then chat with / evaluate it."""
        st = self.state
        if not (self.done or self._finishing):
            return [f"%qftrain --attach {st.task_id}"] if st.task_id else []
        # a held-out file the user named beside the data, else the split the run held out, else the training file
        eval_data = st.held_out if self.eval_is_training and st.held_out else self.eval_data
        return st.next_steps(var_name=self.var_name, can_deploy=self.on_deploy is not None, eval_data=eval_data)

    def _handles(self) -> list[DisplayHandle]:
        return ([self.handle] if self.handle is not None else []) + self.more_handles

    def _publish_snapshot(self, extra: str = "") -> None:
        """Every output of this dashboard becomes its final static state. Published from qfnb's
        loop, a frontend may drop the update (it follows the running cell), so the notebook
        layer publishes it once more from the kernel thread (:meth:`republish`)."""
        bundle = {"text/plain": self.summary_text() + extra, "text/html": self.snapshot_html()}
        if self.deployable:  # Deploy is the next step: keep the widget (its button), the static state beside it
            bundle = {**(self.shown_in or self)._repr_mimebundle_(), **bundle}
        for handle in self._handles():  # the live widget becomes its final static state
            handle.update(bundle, raw=True)
        self.republish_pending = bool(self._handles()) and threading.current_thread() is not threading.main_thread()

    @property
    def deployable(self) -> bool:
        """Whether the job succeeded and its Deploy is still to do (then the widget keeps its button)."""
        return self.state.status == "succeeded" and self.on_deploy is not None and not self.state.service

    @property
    def comparable(self) -> bool:
        """Whether the run succeeded with a held-out split and checkpoints its trainer can compare."""
        return (self.state.status == "succeeded" and isinstance(self.trainer, LLMFinetune)
                and bool(self.state.held_out) and bool(self.state.checkpoints))

    def republish(self) -> bool:
        """Publish the final state again from the kernel thread (an IPython ``post_run_cell``
        hook calls this); True when it did."""
        if not (self.done and self.republish_pending):
            return False
        self._publish_snapshot()
        return True

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
            failed = f'<span style="color:{theme.ERROR}">deploy failed: {escape(message)}</span>'
            self.result.value = self._result_html() + " · " + failed
        self._publish_snapshot(f" · deploy failed: {message}")

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

    def _clicked_deploy(self, _: Any) -> Any:
        if self.on_deploy is None:
            return None
        busy = self.deploying
        if busy is not None and hasattr(busy, "done") and not busy.done():
            return busy  # one deploy at a time: a second click follows the first
        self.deploy_button.disabled = True
        self.deploy_button.description = "Deploying…"
        with self._lock:
            self.state.note("deploy requested")
            self._render(force=True)
        self.deploying = self.on_deploy(self)
        return self.deploying

    def _clicked_compare(self, _: Any) -> threading.Thread:
        """Run the trainer's :meth:`~qfnb.trainer.LLMFinetune.compare` on a thread (it scores every
        held-out pair twice); its verdict and table show under the buttons."""
        self.compare_button.disabled = True
        self.compare_button.description = "Comparing…"
        self.compare_view.value = "<p>scoring the held-out pairs under the base and the tuned model…</p>"

        def work() -> None:
            try:
                if not isinstance(self.trainer, LLMFinetune):
                    raise TypeError("only a fine-tune launched in this kernel compares its checkpoints")
                self.comparison = self.trainer.compare()
                self.compare_view.value = self.comparison._repr_html_()
            except Exception as exc:  # shown in the dashboard, not raised into the widget comm
                log.warning("compare failed: %s", exc)
                self.compare_view.value = f"<p>compare failed: {escape(str(exc))}</p>"
            finally:
                self.compare_button.disabled = False
                self.compare_button.description = "Compare again"

        thread = threading.Thread(target=work, name="qfnb-compare", daemon=True)
        thread.start()
        return thread
