"""The local platform's side of a fine-tune on Ray (``qfnb.local.cluster.ray_follow``) against a fake
Jobs API whose job prints what ``qfnb.local.cluster.ray_train`` prints (progress lines, the best
checkpoint's and the final adapter's files, the result): the job dir ends as a local run's would
(``progress.jsonl`` with the checkpoints, their adapters, ``adapter/``, ``result.json``); a stop stops
the Ray job; a failed job's reason reaches the result; a second follower attaches, never resubmits."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from qfnb.local.cluster import ray_follow, ray_train
from qfnb.local.cluster.jobs import RESULT_PREFIX, TRAIN_PREFIX, connect, ray_version_problem
from qfnb.protocol.platform.targets import JobTarget, TargetError, parse_target

#: a head on this machine (its jobs run this interpreter)
HEAD = JobTarget("ray", "127.0.0.1", 8265)


@dataclass
class TrainJob:
    submission_id: str
    entrypoint: str
    runtime_env: dict[str, Any]
    spec: dict[str, Any]
    script: list[str]  # the log lines it prints, one per read
    status: str = "PENDING"
    printed: list[str] = field(default_factory=list)
    message: str = ""


class FakeTrainJobs:
    """``submit_job``/``list_jobs``/``get_job_status``/``get_job_logs``/``get_job_info``/``stop_job``: a
    job prints the next line of its script each time its status is read, then SUCCEEDED (or ``end``)."""

    def __init__(self, script: list[str], end: str = "SUCCEEDED") -> None:
        self.script, self.end = script, end
        self.jobs: dict[str, TrainJob] = {}

    def submit_job(self, *, entrypoint: str, submission_id: str, runtime_env: dict[str, Any],
                   metadata: dict[str, str]) -> str:
        assert submission_id not in self.jobs, "Ray refuses a submission id twice"
        work = Path(runtime_env["working_dir"])
        spec = json.loads((work / "spec.json").read_text())
        assert (work / spec["train_file"]).is_file()  # the data travels with the job
        self.jobs[submission_id] = TrainJob(submission_id, entrypoint, runtime_env, spec, list(self.script))
        return submission_id

    def list_jobs(self) -> list[TrainJob]:
        return list(self.jobs.values())

    def get_job_status(self, sid: str) -> str:
        job = self.jobs[sid]
        if job.status in ("PENDING", "RUNNING"):
            job.status = "RUNNING"
            if job.script:
                job.printed.append(job.script.pop(0))
            if not job.script:
                job.status = self.end
                job.message = "" if self.end == "SUCCEEDED" else "Job entrypoint command failed with exit code 1"
        return job.status

    def get_job_info(self, sid: str) -> TrainJob:
        return self.jobs[sid]

    def get_job_logs(self, sid: str) -> str:
        return "".join(line + "\n" for line in self.jobs[sid].printed)

    def stop_job(self, sid: str) -> bool:
        self.jobs[sid].status = "STOPPED"
        return True


def _adapter(folder: Path, tag: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": 4, "tag": tag}))
    (folder / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 700)  # several QFNB-FILE pieces
    return folder


def _job_dir(tmp_path: Path) -> Path:
    job = tmp_path / "jobs" / "task-abc"
    job.mkdir(parents=True)
    (job / "train.jsonl").write_text('{"prompt": "a", "response": "b"}\n')
    (job / "eval.jsonl").write_text('{"prompt": "c", "response": "d"}\n')
    (job / "spec.json").write_text(json.dumps({"base_model": "Gemma-3-270M", "train_file": str(job / "train.jsonl"),
                                               "eval_file": str(job / "eval.jsonl"), "hyper": {"maxSteps": 4},
                                               "target": "ray://127.0.0.1:8265"}))
    return job


def _script(tmp_path: Path) -> list[str]:
    """What the cluster side prints for a 4-step run with checkpoints at 2 (best) and 4."""
    remote = tmp_path / "remote"
    points = [{"step": 0, "total_steps": 4, "phase": "loading the base model's weights"}]
    for step in range(1, 5):
        points.append({"step": step, "total_steps": 4, "epoch": 1, "loss": 2.0 - step / 10})
        if step in (2, 4):
            entry = {"step": step, "trainLoss": 1.9, "evalLoss": 1.5 if step == 2 else 1.7,
                     "path": str(remote / f"step-{step}")}
            points.append({"step": step, "total_steps": 4, "epoch": 1, "checkpoint": entry})
    lines = [TRAIN_PREFIX + json.dumps(p) for p in points]
    lines += list(ray_train.file_lines(_adapter(remote / "best", "best"), "checkpoints/step-2"))
    lines += list(ray_train.file_lines(_adapter(remote / "final", "final"), "adapter"))
    result = {"status": "Done", "metrics": {"steps": 4, "best_checkpoint": 2}, "adapter_dir": "/remote/adapter",
              "error": None, "ray_storage": "/remote/storage/qfnb-train-1"}
    return [*lines, RESULT_PREFIX + json.dumps(result)]


def test_a_run_on_ray_ends_in_the_job_dir_as_a_local_run(tmp_path: Path) -> None:
    job = _job_dir(tmp_path)
    fake = FakeTrainJobs(_script(tmp_path))
    result = ray_follow.run(job, client=fake, sleep=lambda _: None)

    (ray_job,) = fake.jobs.values()
    assert ray_job.submission_id == "qfnb-train-task-abc" and "-m qfnb.local.cluster.ray_train" in ray_job.entrypoint
    assert ray_job.spec["train_file"] == "train.jsonl" and "target" not in ray_job.spec
    assert ray_job.entrypoint.endswith("--workers 1") and "ray_workers" not in ray_job.spec  # the default
    assert ray_job.runtime_env["env_vars"]["RAY_DEDUP_LOGS"] == "0"
    assert result["status"] == "Done" and result["adapter_dir"] == str(job / "adapter")
    assert result["metrics"]["ray_job"] == "qfnb-train-task-abc" and json.loads((job / "result.json").read_text())
    points = [json.loads(line) for line in (job / "progress.jsonl").read_text().splitlines()]
    assert [p["loss"] for p in points if "loss" in p] == pytest.approx([1.9, 1.8, 1.7, 1.6])
    saved = [p["checkpoint"] for p in points if "checkpoint" in p]
    assert [(c["step"], c["evalLoss"], c["path"]) for c in saved] == [
        (2, 1.5, str(job / "checkpoints" / "step-2")), (4, 1.7, str(job / "checkpoints" / "step-4"))]
    best = job / "checkpoints" / "step-2"  # the best came back, byte for byte
    assert json.loads((best / "adapter_config.json").read_text())["tag"] == "best"
    assert (best / "adapter_model.safetensors").read_bytes() == bytes(range(256)) * 700
    assert json.loads((job / "adapter" / "adapter_config.json").read_text())["tag"] == "final"
    assert not (job / "checkpoints" / "step-4").exists()  # kept in the Ray run's storage only

    # the platform restarted mid-run: the same job dir attaches to the Ray job, nothing is submitted twice
    again = ray_follow.Follower(job, fake, HEAD)
    again.submit(json.loads((job / "spec.json").read_text()))
    assert len(fake.jobs) == 1


def test_a_stop_stops_the_ray_job(tmp_path: Path) -> None:
    job = _job_dir(tmp_path)
    fake = FakeTrainJobs(_script(tmp_path))
    follower = ray_follow.Follower(job, fake, HEAD, sleep=lambda _: None)
    follower.submit(json.loads((job / "spec.json").read_text()))
    fake.get_job_status(follower.sid)  # one line printed
    follower.stop_requested = True  # what SIGTERM from the platform's supervisor does
    result = follower.follow()
    assert fake.jobs[follower.sid].status == "STOPPED"
    assert result["status"] == "Stopped" and result["adapter_dir"] is None


def test_a_job_that_fails_on_the_cluster_says_why(tmp_path: Path) -> None:
    job = _job_dir(tmp_path)
    script = [TRAIN_PREFIX + json.dumps({"step": 0, "total_steps": 0, "phase": "loading"}),
              "FileNotFoundError: base_model_path: /models/gemma has no config.json"]
    result = ray_follow.run(job, client=FakeTrainJobs(script, end="FAILED"), sleep=lambda _: None)
    assert result["status"] == "Failed" and result["adapter_dir"] is None
    assert "ended FAILED" in result["error"] and "/models/gemma has no config.json" in result["error"]
    assert json.loads((job / "result.json").read_text())["status"] == "Failed"


def test_bad_targets_are_named(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="malformed"):
        parse_target("ray://head")
    where = parse_target("ray://localhost:9000")
    assert where is not None and (where.url, where.same_machine) == ("http://localhost:9000", True)
    assert ray_version_problem("2.60.0") is None
    assert "runs Ray 2.5.0" in str(ray_version_problem("2.5.0"))
    pytest.importorskip("ray.job_submission")
    with pytest.raises(TargetError, match=r"no Ray head answers at ray://127\.0\.0\.1:9"):
        connect(JobTarget("ray", "127.0.0.1", 9))
    job = _job_dir(tmp_path)  # the follower reports an unreachable head in the run's result
    spec = json.loads((job / "spec.json").read_text())
    (job / "spec.json").write_text(json.dumps({**spec, "target": "ray://127.0.0.1:9"}))
    result = ray_follow.run(job, sleep=lambda _: None)
    assert result["status"] == "Failed" and "no Ray head answers at ray://127.0.0.1:9" in result["error"]


def test_the_runs_ray_train_workers_go_to_the_entrypoint(tmp_path: Path) -> None:
    job = _job_dir(tmp_path)
    spec = {**json.loads((job / "spec.json").read_text()), "ray_workers": 3}
    fake = FakeTrainJobs([])
    ray_follow.Follower(job, fake, HEAD).submit(spec)
    (ray_job,) = fake.jobs.values()
    assert ray_job.entrypoint.endswith("-m qfnb.local.cluster.ray_train --workers 3")
    assert "ray_workers" not in ray_job.spec and "target" not in ray_job.spec


def test_a_head_running_a_ray_this_side_does_not_speak_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    submission = pytest.importorskip("ray.job_submission")

    class OldHead:
        def __init__(self, url: str) -> None:
            self._server_ray_version = "2.5.0"  # what the head answered to the version check

    monkeypatch.setattr(submission, "JobSubmissionClient", OldHead)
    with pytest.raises(TargetError, match=r"ray://h:8265 runs Ray 2\.5\.0; qfnb speaks Ray 2\.x from 2\.9"):
        connect(JobTarget("ray", "h", 8265))


def test_more_workers_than_the_cluster_has_cpus_for_are_refused_by_name() -> None:
    assert ray_train.capacity_problem(2, 1.0, 2.0) is None
    problem = ray_train.capacity_problem(3, 1.0, 2.0)
    assert problem is not None and "3 Ray Train workers of 1 CPU each need 3 CPUs; the cluster has 2" in problem
    assert "at least 1" in str(ray_train.capacity_problem(0, 1.0, 2.0))


def test_a_failed_worker_fails_the_whole_data_parallel_run() -> None:
    failed = {"status": "Failed", "error": "FileNotFoundError: base_model_path: /models/gemma has no config.json"}
    with pytest.raises(RuntimeError, match="Ray Train worker 1 of 2: FileNotFoundError: base_model_path"):
        ray_train._report_held(1, 2, failed, [], lambda metrics, path: None)
