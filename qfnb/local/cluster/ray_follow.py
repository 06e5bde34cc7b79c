"""The local platform's side of a fine-tune on a Ray cluster (a run whose ``spec.json`` names a
``target`` ``ray://HOST:DASHBOARD_PORT``)::

    python -m qfnb.local.cluster.ray_follow <job_dir>

It keeps the training worker's contract (Contract 4), so the jobs supervisor runs, tails, stops and
registers it exactly as a local run: it submits the run as one Ray job (the job dir's spec and data
as the working dir, :mod:`qfnb.local.cluster.ray_train` the entrypoint), follows the job's log
through the Jobs API, appends each ``QFNB-TRAIN`` line to ``progress.jsonl`` (a checkpoint's
``path`` made this job dir's), writes the files the job sends back (the best checkpoint's adapter
and the final one) into the job dir, and ends with ``result.json``. SIGTERM stops the Ray job.

Calling it again for the same job dir (a platform restarted while it ran) attaches to the Ray job
of the same submission id instead of submitting it twice.
"""

from __future__ import annotations

import base64
import json
import logging
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

from qfnb.local.cluster import jobs
from qfnb.local.cluster.jobs import FILE_PREFIX, RESULT_PREFIX, TRAIN_PREFIX, log_items
from qfnb.local.cluster.ray_train import JOB_FILES
from qfnb.protocol.platform.files import write_private_json
from qfnb.protocol.platform.targets import JobTarget, TargetError, parse_target

log = logging.getLogger("qfnb.local.cluster.ray_follow")

ENTRY_MODULE = "qfnb.local.cluster.ray_train"
_GOING = ("PENDING", "RUNNING")
#: seconds between reads of the job's log
POLL = 1.0
check = jobs.connect  # every cluster backend's route check before a task is queued (TargetError: no head)


def submission_id(job_dir: Path) -> str:
    return f"qfnb-train-{job_dir.name}"


class Follower:
    """One run's Ray job: submitted (or found again), its log mirrored into the job dir."""

    def __init__(self, job_dir: Path, client: Any, target: JobTarget, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.job_dir, self.client, self.target, self.sleep = job_dir, client, target, sleep
        self.sid = submission_id(job_dir)
        self.stop_requested = False
        self._lines = 0  # QFNB-TRAIN lines already mirrored
        self._pieces: dict[str, dict[int, bytes]] = {}

    def submit(self, spec: dict[str, Any]) -> None:
        """Submit the run as a Ray job, unless a job of its submission id is already there."""
        known = {details.submission_id for details in self.client.list_jobs()}
        if self.sid in known:
            log.info("Ray job %s is already there: following it", self.sid)
            return
        with tempfile.TemporaryDirectory(prefix="qfnb-ray-train-") as tmp:
            workers = int(spec.get("ray_workers") or 1)
            staged = {k: v for k, v in spec.items() if k not in ("target", "ray_workers")}
            for key, name in (("train_file", "train.jsonl"), ("eval_file", "eval.jsonl")):
                if spec.get(key):  # the job's working dir carries the data under its own names
                    Path(tmp, name).write_bytes(Path(spec[key]).read_bytes())
                    staged[key] = name
            Path(tmp, JOB_FILES[0]).write_text(json.dumps(staged), encoding="utf-8")
            python, env = jobs.job_env(self.target, tmp, {"RAY_DEDUP_LOGS": "0"}, ["local", "ray"])
            jobs.submit(self.client, self.target, sleep=self.sleep,
                        entrypoint=f"{shlex.quote(python)} -m {ENTRY_MODULE} --workers {workers}",
                        submission_id=self.sid, runtime_env=env, metadata={"qfnb_train": self.job_dir.name})
        log.info("fine-tune %s submitted as Ray job %s", self.job_dir.name, self.sid)

    def follow(self) -> dict[str, Any]:
        """Mirror the job's log until it ends; its result (with this job dir's paths)."""
        stopping = False
        while True:
            if self.stop_requested and not stopping:
                log.info("stopping Ray job %s", self.sid)
                self.client.stop_job(self.sid)
                stopping = True
            found = self.client.get_job_status(self.sid)
            status = found.value if isinstance(found, Enum) else str(found)
            result = self.mirror(jobs.job_logs(self.client, self.target, self.sid))
            if status not in _GOING:
                return self.ended(status, result)
            self.sleep(POLL)

    def mirror(self, logs: str) -> dict[str, Any] | None:
        """Append the log's new progress lines and write its complete files; the result line, if printed."""
        items = log_items(logs, (TRAIN_PREFIX, FILE_PREFIX, RESULT_PREFIX))
        for item in (item for prefix, item in items if prefix == FILE_PREFIX):
            self._piece(item)
        points = [item for prefix, item in items if prefix == TRAIN_PREFIX]
        fresh = points[self._lines:]
        self._lines = len(points)
        if fresh:
            with open(self.job_dir / "progress.jsonl", "a", encoding="utf-8") as out:
                for point in fresh:
                    entry = point.get("checkpoint")
                    if isinstance(entry, dict):  # where its adapter lands when it is sent back
                        entry["path"] = str(self.job_dir / "checkpoints" / f"step-{int(entry['step'])}")
                    out.write(json.dumps(point) + "\n")
        return next((item for prefix, item in reversed(items) if prefix == RESULT_PREFIX), None)

    def _piece(self, item: dict[str, Any]) -> None:
        name = str(item["path"])
        target = (self.job_dir / name).resolve()
        if self.job_dir.resolve() not in target.parents:
            log.warning("ignoring a file outside the job dir: %s", name)
            return
        pieces = self._pieces.setdefault(name, {})
        pieces[int(item["part"])] = base64.b64decode(item["data"])
        if len(pieces) == int(item["parts"]) and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"".join(pieces[i] for i in range(len(pieces))))

    def ended(self, status: str, result: dict[str, Any] | None) -> dict[str, Any]:
        """The run's result.json for a Ray job that ended ``status``."""
        if result is not None:
            adapter = self.job_dir / "adapter"
            result = {**result, "adapter_dir": str(adapter) if result.get("adapter_dir") and adapter.is_dir() else None}
            if result.get("status") == "Done" and result["adapter_dir"] is None:
                result = {**result, "status": "Failed", "error": "the Ray job's adapter did not come back"}
            return result
        if status == "STOPPED" or self.stop_requested:
            return jobs.unfinished(None, "Stopped")
        info = self.client.get_job_info(self.sid)
        tail = " | ".join(jobs.job_logs(self.client, self.target, self.sid).strip().splitlines()[-8:])[-800:]
        return jobs.unfinished(f"the Ray job {self.sid} ended {status}: {info.message or ''} {tail}")


def run(job_dir: Path, *, client: Any = None, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Train ``job_dir``'s run on its Ray target; returns (and writes) the result."""
    job_dir = Path(job_dir).resolve()
    spec = json.loads((job_dir / "spec.json").read_text(encoding="utf-8"))
    started = time.time()
    follower: Follower | None = None
    try:
        target = parse_target(spec.get("target"), env=False)
        if target is None or target.cluster is None:
            raise TargetError("target", f"{spec.get('target')!r} is not a cluster target")
        follower = Follower(job_dir, client if client is not None else jobs.connect(target), target, sleep=sleep)
        _FOLLOWING.append(follower)
        follower.submit(spec)
        result = follower.follow()
    except Exception as exc:  # the worker's contract: every failure is reported in result.json
        log.exception("the Ray fine-tune failed")
        result = jobs.unfinished(str(exc))
    result.setdefault("metrics", {})["wall_seconds"] = round(time.time() - started, 3)
    if follower is not None:
        result["metrics"]["ray_job"] = follower.sid
    write_private_json(job_dir / "result.json", result)
    return result


_FOLLOWING: list[Follower] = []


def _stop(signum: int, frame: Any) -> None:
    for follower in _FOLLOWING:
        follower.stop_requested = True


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.stderr.write("usage: python -m qfnb.local.cluster.ray_follow <job_dir>\n")
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    result = run(Path(argv[0]))
    return 0 if result["status"] in ("Done", "Stopped") else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
