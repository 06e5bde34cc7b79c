"""%qftrain and the training dashboard, driven by a fake trainer emitting Contract 5 events."""

from __future__ import annotations

import functools
import threading
import time
import types

import pytest
from IPython.core.error import UsageError
from nb_doubles import FakeEvent, FakeTrainer, RecordingPublisher, use_trainer

from qfnb.notebook.errors import QfnbCellError
from qfnb.notebook.training.attach import attach
from qfnb.notebook.training.dashboard import TrainingDashboard
from qfnb.notebook.training.launcher import FinetuneLauncher
from qfnb.notebook.training.run import TrainSpec, deploy_in_background
from qfnb.notebook.training.state import TrainingState

PNG = b"\x89PNG"


def test_launch_runs_in_background_and_finishes(ip, pub: RecordingPublisher) -> None:
    gate = threading.Event()
    made = use_trainer(ip, steps=20, step_time=0.01, gate=gate)
    assert ip.run_line_magic("qftrain", "--dataset demo.jsonl --steps 20 --epochs 2 --lr 3e-4 -o dash") is None
    dash = ip.user_ns["dash"]
    assert not dash.done and made[0].status != "Running", "the magic returned while training waits (not blocked)"
    gate.set()
    assert isinstance(dash, TrainingDashboard)
    assert dash.model_id == dash.comm.comm_id, "the widget keeps its comm model id"
    state = dash.wait(timeout=10)
    spec = made[0].spec
    assert (spec.dataset, spec.steps, spec.epochs, spec.lr) == ("demo.jsonl", 20, 2, 3e-4)
    assert spec.train_config() == {"epoch": 2, "learning_rate": 3e-4, "max_steps": 20}
    assert state.status == "succeeded" and state.step == 20 and state.total_steps == 20
    assert state.loss[-1] == (20, pytest.approx(0.15)) and len(state.loss) == 20
    assert state.model_id == "am-42"
    assert dash.bar.value == 1.0 and dash.bar.bar_style == "success"
    assert "succeeded" in dash.header.value and "am-42" in dash.result.value
    assert dash.stop_button.disabled and dash.stop_button.layout.display == "none"
    assert dash.deploy_button.layout.display is None
    assert bytes(dash.chart.value).startswith(PNG)
    log = dash.log_view.value  # in the user's words, not the pipeline's class names
    assert "training" in log and "fine-tune succeeded" in log and "Action" not in log
    # one dashboard: its output carries the final static state (HTML + text), so a saved notebook
    # reopened without a kernel shows it; Deploy being the next step, the widget (its button) stays
    ids = pub.by_display_id()
    final = ids[dash.handle.display_id][-1]
    assert final["update"] and "application/vnd.jupyter.widget-view+json" in final["data"]
    assert "qfnb-dashboard-static" in final["data"]["text/html"] and dash.deploy_button.layout.display is None
    snap = final["data"]
    assert snap["text/plain"].startswith("[qftrain] Gemma-3-270M ← demo.jsonl: succeeded · step 20/20")
    assert snap["text/plain"] == repr(dash)
    assert "model am-42" in snap["text/plain"] and "task task-1" in snap["text/plain"]
    assert "data:image/png;base64," in snap["text/html"] and "succeeded" in snap["text/html"]
    assert "next:" in snap["text/html"] and "dash.deploy()" in snap["text/html"]
    assert len(ids) == 1, "one output: no second copy of the dashboard"


def test_updates_are_throttled() -> None:
    now = [0.0]
    dash = TrainingDashboard("t", text_interval=0.25, clock=lambda: now[0])
    running = {"taskId": "task-1", "runStatus": "Running", "totalSteps": 1000}
    built = dash.renders  # the first draw
    for step in range(1, 1001):  # 1000 events inside one interval: one redraw
        dash.handle_event(FakeEvent("TrainAction", "t-1", "Running", "", {**running, "currentStep": step}))
    assert dash.renders == built + 1 and dash.state.step == 1000
    now[0] += 0.24
    dash.handle_event(FakeEvent("TrainAction", "t-1", "Running", "", {**running, "currentStep": 1000}))
    assert dash.renders == built + 1
    now[0] += 0.01  # the interval has passed: the next event redraws
    dash.handle_event(FakeEvent("TrainAction", "t-1", "Running", "", {**running, "currentStep": 1000}))
    assert dash.renders == built + 2


def test_stop_button_stops_the_job(ip) -> None:  # type: ignore[no-untyped-def]
    made = use_trainer(ip, steps=500, step_time=0.01)
    ip.run_line_magic("qftrain", "--dataset d.jsonl -o dash")
    dash = ip.user_ns["dash"]
    deadline = time.monotonic() + 10
    while dash.state.step == 0 and time.monotonic() < deadline:  # until training has begun
        time.sleep(0.01)
    dash.stop_button.click()
    state = dash.wait(timeout=10)
    assert made[0].stop_calls == 1 and state.status == "stopped"
    assert dash.bar.bar_style == "warning" and dash.deploy_button.layout.display == "none"
    assert 0 < state.step < 500


def test_failure_is_shown(ip) -> None:  # type: ignore[no-untyped-def]
    use_trainer(ip, steps=10, fail_at=4)
    ip.run_line_magic("qftrain", "--dataset d.jsonl -o dash")
    state = ip.user_ns["dash"].wait(timeout=10)
    assert state.status == "failed" and "training failed at step 4" in (state.error or "")
    assert "failed" in ip.user_ns["dash"].header.value and "error" in ip.user_ns["dash"].result.value


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--dataset d.jsonl --epochs 0", r"--epochs must be in \[1, 100\], got 0"),
        ("--dataset d.jsonl --lr 5", r"--lr must be in \(0, 1\]"),
        ("--dataset d.jsonl --batch-size 0", "--batch-size"),
        ("--epochs 2", "--dataset is required"),
        ("--dataset d.jsonl -o 9x", "-o/--output"),
    ],
)
def test_bad_arguments_fail_before_anything_starts(ip, line: str, message: str) -> None:  # type: ignore[no-untyped-def]
    made = use_trainer(ip)
    with pytest.raises(UsageError, match=message):
        ip.run_line_magic("qftrain", line)
    assert made == []


def test_factory_error_is_one_clear_line(ip) -> None:  # type: ignore[no-untyped-def]
    def factory(spec, handler):  # type: ignore[no-untyped-def]
        raise FileNotFoundError("no such dataset: nope.jsonl")

    ip.magics_manager.registry["QfnbMagics"].trainer_factory = factory
    with pytest.raises(QfnbCellError, match="no such dataset"):
        ip.run_line_magic("qftrain", "--dataset nope.jsonl")


def test_no_args_shows_the_launcher(ip, pub: RecordingPublisher) -> None:
    use_trainer(ip, steps=5)
    from qfnb.notebook.models.discovery import ModelList, ModelRow

    cloud = ModelList([ModelRow("chat", "ERNIE-Speed-8K", "chat/ernie_speed"), ModelRow("chat", "Gemma-3-270M", "x"),
                       ModelRow("endpoint", "ep_tuned", "service s")], "the platform's service list")
    ip.magics_manager.registry["QfnbMagics"].list_models = lambda: cloud
    assert ip.run_line_magic("qftrain", "-o launcher") is None  # displayed (with a display id), no Out[n]
    launcher = ip.user_ns["launcher"]
    assert isinstance(launcher, FinetuneLauncher)
    assert launcher.base.value == "Gemma-3-270M" and launcher.steps.value == 30
    # the base models are the platform's (the cloud's names there), never an endpoint
    assert launcher.base.options == ("Gemma-3-270M", "ERNIE-Speed-8K")
    launcher.dataset.value = "mine.jsonl"
    launcher.launch_button.click()
    assert launcher.dashboard is not None and launcher.slot.children == (launcher.dashboard,)
    assert launcher.dashboard.wait(timeout=10).status == "succeeded"
    assert launcher.launch_button.disabled
    (outputs,) = pub.by_display_id().values()  # the form's output became the job's final static state
    assert "application/vnd.jupyter.widget-view+json" in outputs[0]["data"]
    assert "qfnb-dashboard-static" in outputs[-1]["data"]["text/html"]


def test_launcher_shows_validation_errors() -> None:
    launcher = FinetuneLauncher(factory=lambda s, h: FakeTrainer(s, h), base_models=("Gemma-3-270M",))
    launcher.dataset.value = ""
    launcher.launch_button.click()
    assert "--dataset is required" in launcher.message.value and launcher.dashboard is None
    launcher.base.value = "  "
    launcher.dataset.value = "x.jsonl"
    launcher.launch_button.click()
    assert "--base" in launcher.message.value


def test_deploy_button_after_success() -> None:
    deployed: list[str] = []

    def on_deploy(d: TrainingDashboard) -> None:
        deployed.append(d.trained_model_id or "")
        d.mark_deployed("ep-tuned")

    dash = TrainingDashboard("t", on_deploy=on_deploy)
    dash.handle_event(FakeEvent("ModelPublishAction", "p", "Done", "", {"model_id": "am-1"}))
    dash.finish("succeeded")
    assert dash.deploy_button.layout.display is None
    dash.deploy_button.click()
    assert deployed == ["am-1"] and dash.state.service == "ep-tuned"
    assert dash.deploy_button.layout.display == "none" and "ep-tuned" in dash.result.value


def test_deploy_without_a_published_version_fails_clearly() -> None:
    dash = TrainingDashboard("t", on_deploy=deploy_in_background)
    dash.trainer = types.SimpleNamespace(output={"task_id": "task-1"})  # trained, but no model version
    dash.handle_event(FakeEvent("ModelPublishAction", "p", "Done", "", {"model_id": "am-1"}))
    dash.finish("succeeded")
    dash.deploy_button.click()
    deadline = time.monotonic() + 5
    while dash.deploy_button.description != "Retry deploy" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dash.deploy_button.description == "Retry deploy" and not dash.deploy_button.disabled
    assert "deploy requested" in dash.log_view.value  # the log shows what happened after the job ended
    assert "deploy failed: the fine-tune published no model version to deploy" in dash.log_view.value
    assert "deploy failed" in dash.result.value
    assert dash.state.service is None


def test_attach_polls_until_done() -> None:
    details = iter(
        [
            {
                "taskId": "t9",
                "model": "Gemma-3-270M",
                "runStatus": "Running",
                "currentStep": s,
                "totalSteps": 3,
                "lossCurve": [[i, 1.0 / i] for i in range(1, s + 1)],
            }
            for s in (1, 2)
        ]
        + [
            {
                "taskId": "t9",
                "runStatus": "Done",
                "currentStep": 3,
                "totalSteps": 3,
                "lossCurve": [[1, 1.0], [2, 0.5], [3, 0.33]],
                "modelId": "am-7",
            }
        ]
    )
    stopped: list[str] = []
    dash = attach("t9", fetch=lambda t: next(details), stop=stopped.append, interval=0.01, show=False)
    state = dash.wait(timeout=5)
    assert state.status == "succeeded" and state.step == 3 and state.model_id == "am-7"
    assert dash.state.title == "Gemma-3-270M · task t9"


def test_attach_failed_task_reports_error() -> None:
    fetch = functools.partial(
        lambda t: {"taskId": t, "runStatus": "Failed", "errorMessage": "disk full", "currentStep": 1, "totalSteps": 4}
    )
    state = attach("t1", fetch=fetch, stop=lambda t: None, interval=0.01, show=False).wait(timeout=5)
    assert state.status == "failed" and state.error == "disk full"
    assert "error: disk full" in state.summary()


def test_attach_unknown_task_is_a_clear_cell_error(ip) -> None:  # type: ignore[no-untyped-def]
    def fetch(task_id: str) -> dict:  # type: ignore[type-arg]
        raise LookupError(f"task {task_id} not found")

    ip.magics_manager.registry["QfnbMagics"].attach_options = {"fetch": fetch}
    with pytest.raises(QfnbCellError, match="task task-nope not found"):
        ip.run_line_magic("qftrain", "--attach task-nope")


def test_state_progress_fallbacks() -> None:
    st = TrainingState(title="x")
    st.apply(FakeEvent("TrainAction", "a", "Running", "", {"runProgress": "40%"}))
    assert st.progress == pytest.approx(0.4) and st.status == "running"
    st.apply(FakeEvent("TrainAction", "a", "Running", "", {"runProgress": "40%"}))
    assert sum("training" in line for line in st.log) == 1, "repeated polls do not flood the log"
    with pytest.raises(ValueError, match="status"):
        st.finish("done")


def test_spec_title_and_defaults() -> None:
    spec = TrainSpec(dataset="/data/x/train.jsonl")
    assert spec.title == "Gemma-3-270M ← train.jsonl" and spec.train_config() == {}


def test_phases_plain_events_and_eta_from_measured_steps() -> None:
    now = [0.0]
    st = TrainingState(title="x", clock=lambda: now[0], started_at=0.0)
    st.apply(FakeEvent("LoadDataSetAction", "a", "Preceding", "LoadDataSetAction starting"))
    assert st.log[-1].endswith("preparing the dataset: starting")
    st.apply(FakeEvent("TrainAction", "t", "Running", "training Running", {"currentStep": 0, "totalSteps": 10}))
    assert st.doing == "preparing the worker (loading the model)" and "ETA" not in st.progress_text()
    st.apply(FakeEvent("TrainAction", "t", "Running", "training Running",
                       {"currentStep": 0, "totalSteps": 10, "phase": "loading the base model's weights"}))
    assert st.doing == "loading the base model's weights" and st.log[-1].endswith("loading the base model's weights")
    # the platform's ETA counts the 100 s of loading; the measured one counts steps: 1 step / 2 s
    now[0] = 100.0
    st.apply(FakeEvent("TrainAction", "t", "Running", "", {"currentStep": 1, "totalSteps": 10, "etaSeconds": 900}))
    assert st.measured_eta is None and "ETA" not in st.progress_text()  # one step measures no step time
    now[0] = 104.0
    st.apply(FakeEvent("TrainAction", "t", "Running", "", {"currentStep": 3, "totalSteps": 10, "etaSeconds": 300}))
    assert st.measured_eta == pytest.approx(14.0) and "ETA 00:14" in st.progress_text()
    assert st.doing == "training"


def test_attach_to_a_finished_deployed_task_shows_its_end_model_and_endpoint_and_no_deploy() -> None:
    import time as _time

    detail = {"taskId": "t5", "jobId": "j5", "model": "Gemma-3-270M", "runStatus": "Done", "currentStep": 4,
              "totalSteps": 4, "finishDate": "2026-11-22T06:02:13Z", "lossCurve": [[4, 0.5]]}
    asked: list[str] = []

    async def served(task_id: str) -> dict:  # type: ignore[type-arg]
        asked.append(task_id)
        return {"service_endpoint": "ep_tuned", "service_id": "svc-1", "model_version_id": "amv-5",
                "model_name": "m_tuned"}

    dash = attach("t5", fetch=lambda t: dict(detail), stop=lambda t: None, interval=0.01, show=False,
                  deployment=served)
    state = dash.wait(timeout=5)
    assert asked == ["t5"] and state.status == "succeeded"
    assert state.service == "ep_tuned" and state.model_label == "m_tuned (id amv-5)"
    assert not dash.deployable and dash.deploy_button.layout.display == "none"  # no duplicate service
    ended = _time.strftime("%Y-%m-%d %H:%M:%S", _time.localtime(1795327333.0))  # 2026-11-22T06:02:13Z
    assert state.ended_at == 1795327333.0 and state.summary().endswith(f"ended {ended}")
    assert "endpoint <code>ep_tuned</code>" in dash.result.value and "model <code>m_tuned" in dash.result.value
    assert all(not line.startswith("[00:00]") for line in state.log), list(state.log)
    assert dash.hints()[0] == "%%qfchat -m ep_tuned"  # next: chat with it, not --deploy

    # the same task with nothing serving it: Deploy is offered
    async def nothing(task_id: str) -> dict:  # type: ignore[type-arg]
        return {}

    bare = attach("t5", fetch=lambda t: dict(detail), stop=lambda t: None, interval=0.01, show=False,
                  deployment=nothing)
    assert bare.wait(timeout=5).service is None and bare.deployable


def test_eta_counts_evaluation_pauses_by_the_platforms_timestamps_not_by_when_polls_arrive() -> None:
    """A synthetic run: 60 s loading, 16 steps of 2 s, a 20 s evaluation after every 4th step. Its
    snapshots arrive in a quick burst (an attach catching up), one second apart by the kernel's clock."""
    now = [0.0]
    st = TrainingState(title="x", clock=lambda: now[0], started_at=0.0)
    timeline = [(0, 10.0, "loading the base model's weights"), (0, 60.0, "training")]
    elapsed = 60.0
    for step in range(1, 9):
        elapsed += 2.0
        timeline.append((step, elapsed, ""))
        if step % 4 == 0:
            elapsed += 20.0  # the held-out split's evaluation loss
    for step, at, phase in timeline:
        now[0] += 1.0
        st.apply(FakeEvent("TrainAction", "t", "Running", "", {"currentStep": step, "totalSteps": 16,
                                                              "elapsedSeconds": at, "phase": phase}))
    # steps 1..8 took 2 s each plus one 20 s pause between them: 34 s for 7 steps; 8 steps are left
    assert st.seconds_per_step == pytest.approx(34 / 7)
    assert st.measured_eta == pytest.approx(8 * 34 / 7)  # 38.9 s, where the arrival times said 8 s
    truth = 8 * 2.0 + 2 * 20.0  # the 8 steps left and their two evaluations (step 12 and step 16)
    assert st.measured_eta / truth > 0.65  # within the run's own variation, never several times too short
    assert "ETA 00:39" in st.progress_text()
