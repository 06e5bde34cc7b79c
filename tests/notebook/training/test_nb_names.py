"""Names people can read: ``%qftrain --name``, the launcher's name field, ``LLMFinetune(name=…)``;
dashboards and ``--list`` show the name with the id beside it."""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.error import UsageError
from nb_doubles import FakeTrainer, use_trainer

from qfnb.notebook.training.attach import attach
from qfnb.notebook.training.jobs import jobs_frame
from qfnb.notebook.training.launcher import FinetuneLauncher
from qfnb.notebook.training.run import TrainSpec, default_trainer, deploy_config


def test_qftrain_name_reaches_the_trainer_and_the_dashboard(ip: Any, tmp_path: Any) -> None:
    made = use_trainer(ip, steps=3, step_time=0.001)
    ip.run_line_magic("qftrain", "--dataset data.jsonl --steps 3 --name my-first-tune -o run")
    run = ip.user_ns["run"]
    state = run.wait(30)
    assert made[0].spec.name == "my-first-tune"
    assert state.title == "my-first-tune · Gemma-3-270M ← data.jsonl"
    assert repr(run).startswith("[qftrain] my-first-tune · ") and "task task-1" in repr(run)  # the id beside
    with pytest.raises(UsageError, match="--name must start with a letter"):
        ip.run_line_magic("qftrain", "--dataset data.jsonl --name '../x'")


def test_the_real_trainer_gets_the_name(tmp_path: Any) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "q", "response": "a"}\n', encoding="utf-8")
    trainer = default_trainer(TrainSpec(dataset=str(data), name="tune-7", deploy=True), None)
    assert trainer.name == "tune-7"
    # deployed, the service is called by the launch name and its endpoint starts with it (the id after)
    assert trainer.deploy_config.name == "tune-7" and trainer.deploy_config.endpoint_prefix == "tune_7"


def test_a_named_run_deploys_under_its_name() -> None:
    named = deploy_config("Helpdesk-FAQ.v2")
    assert named.name == "Helpdesk-FAQ.v2" and named.endpoint_prefix == "helpdesk_faq_v2"
    assert deploy_config(None).name == "" and deploy_config(None).endpoint_prefix == ""


def test_the_launcher_has_a_name_field() -> None:
    launcher = FinetuneLauncher(factory=lambda s, h: FakeTrainer(s, h), base_models=("Gemma-3-270M",))
    launcher.name.value = "faq-bot"
    assert launcher.spec().name == "faq-bot" and "--name faq-bot" in launcher.command()


def test_attached_and_listed_jobs_show_the_name_and_the_id() -> None:
    detail = {"taskId": "task-4", "jobName": "faq-bot", "model": "Gemma-3-270M", "runStatus": "Done"}
    dash = attach("task-4", fetch=lambda t: detail, show=False)
    assert dash.state.title == "faq-bot · Gemma-3-270M · task task-4"
    assert dash.launch_name == "faq-bot"  # its Deploy names the service and endpoint after it
    unnamed = attach("task-5", fetch=lambda t: {**detail, "jobName": "job_3fa2"}, show=False)
    assert unnamed.launch_name is None
    frame = jobs_frame([{**detail, "jobId": "job-2", "createDate": None}], now=0.0)
    assert frame.loc[0, "name"] == "faq-bot" and frame.loc[0, "task"] == "task-4"
