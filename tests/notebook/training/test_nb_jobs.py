"""Finding a fine-tune again: ``%qftrain --list`` and ``%qftrain --attach [id]`` with every id
a user is shown (task, job, pipeline, none), against the local platform's real routes (engine
and training-worker doubles) — and a deploy that the same process can chat with at once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from qfnb.notebook.training.jobs import jobs_frame, resolve_task
from tests.fakes.local_platform import ServedPlatform

TASKS = [
    {"taskId": "task-b", "jobId": "job-2", "jobName": "second", "model": "Tiny-Chat", "runStatus": "Running",
     "runProgress": "40%", "createDate": "2026-11-22T10:00:00Z"},
    {"taskId": "task-a", "jobId": "job-1", "jobName": "first", "model": "Tiny-Chat", "runStatus": "Done",
     "runProgress": "100%", "createDate": "2026-11-22T08:00:00Z"},
]


def test_resolve_every_id_a_user_is_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path))
    from qfnb.trainer.records import persist

    persist.write_record({"id": "ppl-x1", "actions": [{"type": "LoadDataSetAction", "extra": {}},
                                                      {"type": "TrainAction", "extra": {"task_id": "task-a"}}]})
    assert resolve_task("task-zz", TASKS) == "task-zz"
    assert resolve_task("job-1", TASKS) == "task-a"
    assert resolve_task("ppl-x1", TASKS) == "task-a"
    assert resolve_task(None, TASKS) == "task-b"  # the newest running one
    with pytest.raises(UsageError, match="no fine-tune is running"):
        resolve_task(None, TASKS[1:])
    with pytest.raises(UsageError, match="no fine-tune job 'job-9'"):
        resolve_task("job-9", TASKS)
    with pytest.raises(UsageError, match="'ppl-nope' is not a task"):
        resolve_task("ppl-nope", TASKS)


def test_jobs_frame_columns_and_age() -> None:
    now = time.mktime(time.strptime("2026-11-22 10:30:00", "%Y-%m-%d %H:%M:%S")) - time.timezone
    frame = jobs_frame(TASKS, now=now)
    assert list(frame.columns) == ["task", "job", "name", "model", "status", "progress", "age"]
    assert frame.iloc[0].to_dict() == {"task": "task-b", "job": "job-2", "name": "second", "model": "Tiny-Chat",
                                       "status": "Running", "progress": "40%", "age": "30 min ago"}
    assert frame.iloc[1]["age"] == "2 h ago"


@pytest.fixture
def platform(local_platform: ServedPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The local platform's app on a thread, installed as qfnb's default backend."""
    monkeypatch.setenv("QIANFAN_CACHE_DIR", str(tmp_path / "cache"))
    local_platform.as_default_backend(monkeypatch)
    return local_platform.url


def test_list_attach_deploy_then_chat_in_the_same_process(ip, platform: str) -> None:  # type: ignore[no-untyped-def]
    from qfnb import ChatCompletion
    from qfnb.dataset import Dataset
    from qfnb.trainer import LLMFinetune, TrainConfig

    rows = [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(8)]
    trainer = LLMFinetune(train_type="Tiny-Chat", dataset=Dataset.create_from_pyobj(rows), model_not_publish=True,
                          train_config=TrainConfig(epoch=1, batch_size=2, max_steps=15, extras={"stepSeconds": 0.1}))
    trainer.start()
    deadline = time.time() + 30
    while (frame := ip.run_line_magic("qftrain", "--list")).empty and time.time() < deadline:
        time.sleep(0.1)
    assert frame.iloc[0]["status"] in ("Waiting", "Running") and frame.iloc[0]["model"] == "Tiny-Chat"
    ChatCompletion().do(messages=[{"role": "user", "content": "hi"}])  # caches service/list
    ip.run_line_magic("qftrain", "--attach -o run")  # no id: the newest running job
    run = ip.user_ns["run"]
    assert run.state.task_id == frame.iloc[0]["task"]
    state = run.wait(timeout=60)
    assert state.status == "succeeded" and state.step == 15
    trainer.wait(timeout=30)
    run.deploy_button.click()  # what a user clicks
    deadline = time.time() + 30
    while run.service is None and time.time() < deadline:
        time.sleep(0.05)
    assert run.service is not None, run.result.value
    endpoint = run.service.endpoint
    # the service list cached before the deploy does not hide the new service (%qfeval's check)
    from qfnb._core.runtime import sync
    from qfnb.notebook.evaluation.targets import _acheck_resource

    chat = ChatCompletion(endpoint=endpoint)
    sync.run(_acheck_resource(chat, endpoint))
    at_best = f"{endpoint}@best"  # a checkpoint of the service (%qfeval --models ep_x@best,ep_x@step-8,BASE)
    sync.run(_acheck_resource(ChatCompletion(endpoint=at_best), at_best))
    answer = chat.do(messages=[{"role": "user", "content": "hi"}])
    assert "adapter" in answer["result"]
    # attaching by job id and by pipeline id finds the same task
    job = frame.iloc[0]["job"]
    assert resolve_task(job) == resolve_task(trainer.id) == run.state.task_id
    # attached again (a later kernel): the ended, deployed task shows its endpoint and offers no Deploy
    ip.run_line_magic("qftrain", f"--attach {run.state.task_id} -o again")
    again = ip.user_ns["again"]
    final = again.wait(timeout=30)
    assert final.status == "succeeded" and final.service == endpoint, again.result.value
    assert not again.deployable and again.hints()[0] == f"%%qfchat -m {endpoint}"
