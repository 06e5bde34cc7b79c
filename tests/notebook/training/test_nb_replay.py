"""``%qftrain`` and a reused fine-tune: ``--fresh`` trains again; without it the trainer reuses a
finished run of the same recipe while the kernel's cache is on, and the dashboard says which."""

from __future__ import annotations

from typing import Any

from nb_doubles import use_trainer

from qfnb.notebook.training.dashboard import TrainingDashboard
from qfnb.notebook.training.run import TrainSpec, default_trainer
from qfnb.notebook.training.state import TrainingState
from qfnb.trainer import ActionState, Event

REUSED = {"fingerprint": "f" * 24, "job_id": "job-1", "task_id": "task-9", "finished": "2025-01-02T03:04:05Z",
          "note": "reused finished run task-9"}


def test_fresh_reaches_the_trainer(ip: Any, tmp_path: Any) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "q", "response": "a"}\n', encoding="utf-8")
    assert default_trainer(TrainSpec(dataset=str(data)), None).replay is None  # follows the kernel's cache
    assert default_trainer(TrainSpec(dataset=str(data), fresh=True), None).replay is False
    made = use_trainer(ip, steps=2, step_time=0.001)
    ip.run_line_magic("qftrain", "--dataset data.jsonl --steps 2 --fresh -o run")
    ip.user_ns["run"].wait(30)
    ip.run_line_magic("qftrain", "--dataset data.jsonl --steps 2 -o run")
    ip.user_ns["run"].wait(30)
    assert [t.spec.fresh for t in made] == [True, False]


def test_the_dashboard_names_the_reused_run() -> None:
    state = TrainingState("t")
    state.apply(Event("a", ActionState.Running, "reused finished run task-9",
                      {"taskId": "task-9", "runStatus": "Done", "replayed": REUSED, "lossCurve": [[1, 2.0]]},
                      action_class="TrainAction"))
    state.finish("succeeded")
    assert "↺ reused finished run task-9, finished 2025-01-02T03:04:05Z (--fresh trains again)" in state.summary()
    dash = TrainingDashboard("t")
    dash.handle_event(Event("a", ActionState.Running, "reused", {"taskId": "task-9", "replayed": REUSED},
                            action_class="TrainAction"))
    dash.finish("succeeded")
    html = dash.snapshot_html(chart=b"png")
    assert "qfnb-reused" in html and "task-9" in html and "--fresh" in html


def test_a_trained_run_says_nothing_of_reuse() -> None:
    state = TrainingState("t")
    state.apply(Event("a", ActionState.Running, "training", {"taskId": "task-1", "runStatus": "Running"},
                      action_class="TrainAction"))
    assert state.reused is None and "reused" not in state.summary()
