"""Every hint a dashboard can show, run against a fixture job: each must do its step for THAT job.

The fixture job is a FakeTrainer run (Contract 5 events, task ``task-1``); the platform is the
local platform's app with engine doubles, where the "deployed" model answers as ``other-chat``
(the deploy itself is a double that marks that endpoint deployed for this dashboard).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from nb_doubles import FakeTrainer, RecordingPublisher, fake_deployer

from qfnb.evaluation import EvaluationResult
from qfnb.notebook.models import discovery
from tests.notebook.evaluation.test_nb_qfeval_run import data_file, platform  # noqa: F401  (fixtures)

ENDPOINT = "other-chat"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def wait_for(predicate: Any, what: str) -> None:
    for _ in range(3000):  # a hang guard, not a speed check
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def run_hint(ip: Any, hint: str, body: str = "hello") -> Any:
    """Run one hint as the user would paste it."""
    if hint.startswith("%%"):
        magic, _, line = hint[2:].partition(" ")
        return ip.run_cell_magic(magic, line, body)
    if hint.startswith("%"):
        magic, _, line = hint[1:].partition(" ")
        return ip.run_line_magic(magic, line)
    result = ip.run_cell(hint)
    result.raise_error()
    return result.result


def setup(ip: Any, step_time: float) -> tuple[Any, list[str | None]]:
    m = ip.magics_manager.registry["QfnbMagics"]
    m.list_models = discovery.list_models  # the platform's list (%%qfchat -m resolves names with it)
    m.trainer_factory = lambda spec, h: FakeTrainer(spec, h, steps=3, step_time=step_time)
    deployed: list[str | None] = []
    m.deployer = fake_deployer(ENDPOINT, deployed)
    return m, deployed


def test_every_hint_does_its_step(ip: Any, pub: RecordingPublisher, platform: Any, data_file: Path) -> None:  # noqa: F811
    m, deployed = setup(ip, step_time=1.0)  # long enough to look at the running dashboard
    ip.run_line_magic("qftrain", f"--dataset {data_file} --steps 3")
    (dash,) = m.dashboards.values()
    wait_for(lambda: dash.state.task_id == "task-1", "the task id is known")
    seen: set[str] = set()

    # while it runs: how to follow it after a restart -> the same dashboard, shown again
    (hint,) = dash.hints()
    assert hint == "%qftrain --attach task-1" and hint in dash._result_html()
    run_hint(ip, hint)
    seen.add("attach")
    assert m.dashboards["task-1"] is dash and len(dash._handles()) == 2, "one dashboard, shown twice"
    dash.wait(60)

    # succeeded, not deployed, no variable: deploy THIS job
    (hint,) = dash.hints()
    assert hint == "%qftrain --attach task-1 --deploy" and hint in dash.snapshot_html()
    run_hint(ip, hint)
    seen.add("deploy")
    assert deployed == ["task-1"] and dash.state.service == ENDPOINT
    assert f"deployed · endpoint {ENDPOINT}" in pub.outputs[-1]["data"]["text/plain"]

    # deployed: chat with it by the name %qfmodels lists, and evaluate it on the job's data
    chat_hint, eval_hint = dash.hints()
    assert chat_hint == f"%%qfchat -m {ENDPOINT}"
    run_hint(ip, chat_hint + " -o answer", "hello")
    seen.add("chat")
    assert str(ip.user_ns["answer"]).startswith("other-chat") and ip.user_ns["answer"].error is None
    assert eval_hint == f"%qfeval --models {ENDPOINT} --dataset {data_file} --limit 20"
    run_hint(ip, eval_hint + " -o res")
    seen.add("eval")
    result = ip.user_ns["res"]
    assert isinstance(result, EvaluationResult) and list(result.metrics_df.index) == [ENDPOINT]
    assert seen == {"attach", "deploy", "chat", "eval"}


def test_the_variable_hint_deploys_and_shows_the_endpoint(ip: Any, pub: RecordingPublisher, platform: Any,  # noqa: F811
                                                         data_file: Path) -> None:  # noqa: F811
    _, deployed = setup(ip, step_time=0.001)
    ip.run_line_magic("qftrain", f"--dataset {data_file} --steps 3 -o run")
    run = ip.user_ns["run"]
    run.wait(60)
    (hint,) = run.hints()
    assert hint == "run.deploy()"
    service = run_hint(ip, hint)
    assert service.endpoint == ENDPOINT and deployed == ["task-1"]
    shown = [o["data"]["text/plain"] for o in pub.outputs if "qfnb-deploy" in o["data"].get("text/html", "")]
    assert shown[-1] == f"deployed · endpoint {ENDPOINT} · chat with it: %%qfchat -m {ENDPOINT}"
    assert run.hints()[0] == f"%%qfchat -m {ENDPOINT}"


def test_a_failed_job_offers_no_step_and_attach_deploy_says_why(ip: Any, platform: Any) -> None:  # noqa: F811
    m, deployed = setup(ip, step_time=0.001)
    m.attach_options = {"fetch": lambda t: {"taskId": t, "runStatus": "Failed", "errorMessage": "disk full"}}
    import pytest
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="failed: there is no model to deploy"):
        ip.run_line_magic("qftrain", "--attach task-9 --deploy")
    dash = m.dashboards["task-9"]
    dash.wait(10)
    assert dash.hints() == [] and deployed == []


def test_an_attached_running_job_deploys_when_it_succeeds(ip: Any, platform: Any) -> None:  # noqa: F811
    m, deployed = setup(ip, step_time=0.001)
    done = threading.Event()  # the task runs until the test says it is done

    def fetch(task_id: str) -> dict[str, Any]:
        if done.is_set():
            return {"taskId": task_id, "runStatus": "Done", "currentStep": 2, "totalSteps": 2}
        return {"taskId": task_id, "runStatus": "Running", "currentStep": 1, "totalSteps": 2}

    m.attach_options = {"fetch": fetch, "interval": 0.01}
    ip.run_line_magic("qftrain", "--attach task-5 --deploy")
    dash = m.dashboards["task-5"]
    assert dash.deploy_button.layout.display == "none" and not dash.stop_button.disabled  # Stop while running
    done.set()
    wait_for(lambda: deployed == ["task-5"], "the deploy once the task succeeded")
    assert dash.state.status == "succeeded" and dash.hints()[0] == f"%%qfchat -m {ENDPOINT}"


def test_an_attached_succeeded_job_is_the_same_dashboard_with_deploy(ip: Any, pub: RecordingPublisher,
                                                                    platform: Any) -> None:  # noqa: F811
    """After a restart, --attach to a job that succeeded: the output keeps the widget (its Deploy
    button) with the final static state beside it; once deployed, it is static."""
    m, deployed = setup(ip, step_time=0.001)
    m.attach_options = {"fetch": lambda t: {"taskId": t, "runStatus": "Done", "currentStep": 3, "totalSteps": 3,
                                            "model": "Gemma-3-270M"}}
    ip.run_line_magic("qftrain", "--attach task-3")
    dash = m.dashboards["task-3"]
    assert dash.done and dash.deploy_button.layout.display is None  # Deploy on success
    final = pub.by_display_id()[dash.handle.display_id][-1]["data"]
    assert WIDGET_VIEW in final and "qfnb-dashboard-static" in final["text/html"] and "succeeded" in final["text/plain"]
    dash.deploy_button.click()
    wait_for(lambda: deployed == ["task-3"], "the deploy")
    final = pub.by_display_id()[dash.handle.display_id][-1]["data"]
    assert WIDGET_VIEW not in final and f"service {ENDPOINT}" in final["text/plain"]


def test_the_eval_hint_prefers_held_out_rows_and_warns_on_the_training_file(tmp_path: Path) -> None:
    from qfnb.notebook.training.dashboard import TRAINING_FILE_WARNING, TrainingDashboard
    from qfnb.notebook.training.run import held_out_file

    train = tmp_path / "tickets.csv"
    train.write_text("prompt,response\n")
    (tmp_path / "notes.txt").write_text("x")
    assert held_out_file(str(train)) is None
    (tmp_path / "tickets_test.jsonl").write_text("{}")  # another format: not the same data
    assert held_out_file(str(train)) is None
    (tmp_path / "tickets_test.csv").write_text("prompt,response\n")
    assert held_out_file(str(train)) == str(tmp_path / "tickets_test.csv")
    assert held_out_file(str(tmp_path / "tickets_test.csv")) is None  # the held-out file's sibling is the training one

    dash = TrainingDashboard("t")
    dash.eval_data, dash.eval_is_training = str(train), True
    dash.state.task_id = "task-1"
    dash.mark_deployed("ep_x")
    dash.finish("succeeded")
    assert any(h.startswith("%qfeval --models ep_x") for h in dash.hints())
    assert TRAINING_FILE_WARNING.split(":")[0] in dash._result_html()
    dash.eval_is_training = False
    assert "qfnb-warning" not in dash._result_html()


def test_the_eval_hint_takes_the_split_the_run_held_out_when_no_file_was_named(tmp_path: Path) -> None:
    from qfnb.notebook.training.dashboard import TrainingDashboard
    from qfnb.trainer.consts import ActionState
    from qfnb.trainer.event import Event

    split = tmp_path / "jobs" / "task-1" / "eval.jsonl"  # what the platform kept with the task
    dash = TrainingDashboard("t")
    dash.eval_data, dash.eval_is_training = str(tmp_path / "tickets.jsonl"), True
    dash.state.apply(Event("train", ActionState.Running, "", {"taskId": "task-1", "currentStep": 4, "totalSteps": 4,
                                                              "evalFile": str(split)}, action_class="TrainAction"))
    dash.mark_deployed("ep_x")
    dash.finish("succeeded")
    assert f"%qfeval --models ep_x --dataset {split} --limit 20" in dash.hints()
    assert "qfnb-warning" not in dash._result_html()  # those rows were never trained on
    dash.eval_data, dash.eval_is_training = str(tmp_path / "tickets_test.jsonl"), False  # a file the user named wins
    assert f"%qfeval --models ep_x --dataset {tmp_path / 'tickets_test.jsonl'} --limit 20" in dash.hints()
