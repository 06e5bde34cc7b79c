"""A saved dashboard says when its state was true. JupyterLab forgets every display id when a kernel
restarts, so no later kernel can update a dashboard a previous one drew: its static state (what a
saved notebook, nbviewer or an HTML export shows) says "snapshot <time>, not live" and how to see
where the job is now; a finished job's says when it ended."""

from __future__ import annotations

import time

from qfnb.notebook.training.dashboard import TrainingDashboard
from qfnb.notebook.training.state import TrainingState
from qfnb.trainer.consts import ActionState
from qfnb.trainer.event import Event

T0 = time.mktime((2026, 11, 22, 14, 2, 13, 0, 0, -1))


def _running(dash: TrainingDashboard) -> None:
    dash.handle_event(Event("task-7", ActionState.Running, "", {"taskId": "task-7", "currentStep": 7, "totalSteps": 60},
                            action_class="TrainAction"))


def test_state_says_when_it_was_true() -> None:
    st = TrainingState(wall=lambda: T0)
    assert st.as_of() == "snapshot 2026-11-22 14:02:13, not live"
    assert st.summary().endswith("· snapshot 2026-11-22 14:02:13, not live")
    st.finish("succeeded")
    st.wall = lambda: T0 + 3600  # later reads keep the time it ended
    assert st.as_of() == "ended 2026-11-22 14:02:13" and st.summary().endswith("ended 2026-11-22 14:02:13")


def test_running_snapshot_html_is_dated_and_says_how_to_follow(ip) -> None:  # type: ignore[no-untyped-def]
    dash = TrainingDashboard("t")
    dash.state.wall = lambda: T0
    _running(dash)
    html = dash.snapshot_html()
    assert 'class="qfnb-as-of"' in html and "snapshot 2026-11-22 14:02:13, not live" in html
    assert "where the job is now: " in html and "%qftrain --attach task-7" in html
    assert "(snapshot 2026-11-22 14:02:13)" in dash.offline.value  # the widget's line after a restart
    dash.finish("succeeded")
    final = dash.snapshot_html()
    assert "ended 2026-11-22 14:02:13" in final and "not live" not in final and "where the job is now" not in final


def test_a_running_bar_fallback_is_dated_and_the_final_one_is_not() -> None:
    from qfnb._core.runtime.progress import ProgressSnapshot
    from qfnb.notebook.widgets.progress_bar import static_html

    snap = ProgressSnapshot("batch", 10, 1, 0, 2.0)
    assert "snapshot " in static_html(snap, final=False) and "not live" in static_html(snap, final=False)
    assert "snapshot" not in static_html(snap)
