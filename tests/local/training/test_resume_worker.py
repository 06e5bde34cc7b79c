"""A fine-tune whose training worker is killed goes on from its last resume point (``resume/``): the real
worker on a tiny random Gemma 3 killed by SIGKILL and started again by the supervisor ends as an
uninterrupted run does; the supervisor resumes a run at most three times and fails one without a point."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_checkpoints_worker import _job

from qfnb.local.domain.state.store import Store
from qfnb.local.domain.training import jobs
from qfnb.local.domain.training.jobs import MAX_RESUMES, Supervisor
from qfnb.local.training import resume
from qfnb.local.training.process import worker

FAKE_WORKER = Path(__file__).parents[1] / "fake_worker.py"
KILLED_WORKER = Path(__file__).with_name("killed_worker.py")
needs_peft = pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft not installed")


def _supervised(tmp_path: Path, job: Path, command: tuple[str, ...]) -> tuple[Store, Supervisor, int]:
    store = Store(tmp_path / "platform.sqlite3")
    run = store.insert("runs", {"status": "Waiting", "job_dir": str(job), "baseModel": "tiny", "lossCurve": []},
                       sid="task-resume")
    return store, Supervisor(store, command, poll_interval=0.05), int(run["id"])


def _until(sup: Supervisor, check: Any, timeout: float = 120.0) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        sup.tick()
        if got := check():
            return got
        time.sleep(0.05)
    raise AssertionError("timed out")


def _adapter(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


@needs_peft
def test_a_killed_worker_resumes_from_its_last_point_and_ends_as_an_uninterrupted_run(tmp_path: Path) -> None:
    hyper = {"maxSteps": 6, "checkpoints": 3}  # resume points at the checkpoints of steps 2 and 4
    whole = worker.run(_job(tmp_path / "whole", **hyper))
    assert whole["status"] == "Done"
    job = _job(tmp_path / "killed", **hyper)
    store, sup, run_id = _supervised(tmp_path, job, (sys.executable, str(KILLED_WORKER)))
    done = _until(sup, lambda: (r := store.get("runs", run_id))["status"] not in ("Waiting", "Running") and r)
    assert (job / "killed-once").exists()  # the first worker died by SIGKILL after its step-2 point
    assert done["status"] == "Done", done.get("errorMessage")
    assert (done["resumes"], done["resumedFrom"]) == (1, 2)
    assert [step for step, _ in done["lossCurve"]] == [1, 2, 3, 4, 5, 6]  # no step twice
    assert [c["step"] for c in done["checkpointList"]] == [2, 4, 6]
    lines = [json.loads(x) for x in (job / "progress.jsonl").read_text().splitlines()]
    assert {"step": 2, "phase": "resumed from step 2"}.items() <= next(p for p in lines if "resumed" in
                                                                          str(p.get("phase"))).items()
    m, w = done["metrics"], whole["metrics"]
    assert (m["steps"], m["total_steps"], m["trained_tokens"]) == (6, 6, w["trained_tokens"])
    # the adapter, AdamW's moments and torch's random state came back: the same run, on the same CPU
    assert m["final_loss"] == pytest.approx(w["final_loss"], abs=1e-5)
    ours, theirs = _adapter(Path(done["adapter_dir"])), _adapter(Path(whole["adapter_dir"]))
    assert ours.keys() == theirs.keys()
    for name, tensor in ours.items():
        assert (tensor - theirs[name]).abs().max().item() < 1e-5, name
    assert not (job / "resume").exists()  # a finished run drops its point
    store.close()


@needs_peft
def test_a_resume_point_is_kept_every_interval_without_checkpoints(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resume, "EVERY_SECONDS", 0.0)  # due after every step
    result = worker.run(_job(tmp_path, maxSteps=3))
    m = result["metrics"]
    assert result["status"] == "Done" and m["resume_points"] == 2  # steps 1 and 2: none after the last
    assert 0 < m["resume_seconds"] < m["train_seconds"]


def _fake_job(tmp_path: Path, **hyper: Any) -> Path:
    job = tmp_path / "job"
    job.mkdir()
    (job / "train.jsonl").write_text(json.dumps({"prompt": "q", "response": "a"}) + "\n")
    (job / "spec.json").write_text(json.dumps({"base_model": "tiny", "train_file": str(job / "train.jsonl"),
                                               "seed": 1, "hyper": {"epoch": 1, "batchSize": 1, **hyper}}))
    return job


def _kill_when(sup: Supervisor, store: Store, run_id: int, ready: Any) -> None:
    run = _until(sup, lambda: (r := store.get("runs", run_id))["status"] == "Running" and ready() and r)
    os.kill(int(run["pid"]), signal.SIGKILL)
    sup._workers[run_id].proc.wait()  # type: ignore[union-attr]


def test_a_killed_run_without_a_resume_point_fails_as_before(tmp_path: Path) -> None:
    job = _fake_job(tmp_path, maxSteps=400, stepSeconds=0.2)
    store, sup, run_id = _supervised(tmp_path, job, (sys.executable, str(FAKE_WORKER)))
    _kill_when(sup, store, run_id, lambda: (job / "progress.jsonl").exists())
    failed = _until(sup, lambda: (r := store.get("runs", run_id))["status"] == "Failed" and r)
    assert "exited with code -9 without a result" in failed["errorMessage"] and not failed.get("resumes")
    store.close()


def test_a_run_is_resumed_at_most_three_times_in_a_row_from_one_point(tmp_path: Path) -> None:
    job = _fake_job(tmp_path, maxSteps=400, stepSeconds=0.1, fakeResume=True, fakeResumeAt=1)
    store, sup, run_id = _supervised(tmp_path, job, (sys.executable, str(FAKE_WORKER)))
    for kill in range(MAX_RESUMES + 1):
        (job / "resume").mkdir(exist_ok=True)
        for f in (job / "resume").iterdir():
            f.unlink()  # wait for this worker's own point
        _kill_when(sup, store, run_id, lambda: resume.saved_step(job) is not None)
        run = _until(sup, lambda kill=kill: ((r := store.get("runs", run_id))["status"] == "Failed"
                                             or (r.get("resumes") or 0) > kill) and r)  # queued and started again
        assert run["status"] == ("Running" if kill < MAX_RESUMES else "Failed"), run.get("errorMessage")
    assert (run["resumes"], run["resumedFrom"], run["stalledResumes"]) == (MAX_RESUMES, 1, MAX_RESUMES)
    assert "without a result (after 3 resumes, the last 3 from step 1)" in run["errorMessage"]
    store.close()


def test_a_run_whose_point_moved_on_is_resumed_again_however_often_it_was(tmp_path: Path) -> None:
    job = _fake_job(tmp_path, maxSteps=3)
    store, sup, run_id = _supervised(tmp_path, job, (sys.executable, str(FAKE_WORKER)))
    (job / "resume").mkdir()
    for step, stalled in ((5, 1), (5, 2), (5, 3), (9, 1)):  # killed at the step-5 point thrice, then later on
        (job / "resume" / "state.json").write_text(json.dumps({"step": step}))
        assert sup._resumed(store.get("runs", run_id))
        assert {k: store.get("runs", run_id)[k] for k in ("resumedFrom", "stalledResumes")} == {
            "resumedFrom": step, "stalledResumes": stalled}
    assert store.get("runs", run_id)["resumes"] == 4  # more than MAX_RESUMES in all
    (job / "resume" / "state.json").write_text(json.dumps({"step": 9}))
    assert sup._resumed(store.get("runs", run_id)) and sup._resumed(store.get("runs", run_id))
    assert not sup._resumed(store.get("runs", run_id))  # a fourth time in a row at step 9: it fails
    store.close()


def test_recover_resumes_a_run_whose_worker_died_with_the_server(tmp_path: Path) -> None:
    job = _fake_job(tmp_path, maxSteps=3)
    (job / "resume").mkdir()
    (job / "resume" / "state.json").write_text(json.dumps({"step": 2}))
    store, sup, run_id = _supervised(tmp_path, job, (sys.executable, str(FAKE_WORKER)))
    store.update("runs", run_id, status="Running", pid=None)
    sup.recover()
    assert {k: store.get("runs", run_id)[k] for k in ("status", "resumes", "resumedFrom")} == {
        "status": "Waiting", "resumes": 1, "resumedFrom": 2}
    (job / "resume" / "state.json").unlink()  # and one without a point fails as before
    store.update("runs", run_id, status="Running")
    sup.recover()
    assert store.get("runs", run_id)["errorMessage"] == jobs.RESTART_MESSAGE
    store.close()


def test_a_clean_shutdown_queues_a_run_with_a_point_for_the_next_start(tmp_path: Path) -> None:
    job = _fake_job(tmp_path, maxSteps=400, stepSeconds=0.1, fakeResume=True)
    store, sup, run_id = _supervised(tmp_path, job, (sys.executable, str(FAKE_WORKER)))
    _until(sup, lambda: store.get("runs", run_id)["status"] == "Running" and resume.saved_step(job))
    sup.shutdown()
    run = store.get("runs", run_id)
    assert (run["status"], run["resumes"]) == ("Waiting", 1) and not (job / "result.json").exists()
    store.close()
