"""A fake Ray Jobs API (``JobSubmissionClient``'s calls qfnb makes): each submitted job "runs" its
uploaded rows one per read of its state, printing them as the cluster side does (each row's
``sent_line`` before it is sent, one at a time, then its ``row_line`` with the row's prompt, the node
``node-1`` and the journal mark it was handed); a test may put ``forged``
lines before them, as a hostile head would; a stopped job prints the next row as in flight
(``spent_line``, 3 + 1 tokens), as the cluster's driver does on SIGTERM; a killed one (``kill``, what
Ray does to a job out of memory, or a driver SIGKILLed) prints nothing more: the row it had sent is lost.
A row whose prompt is in ``lost_once`` carries one lost sending (``qfnb_lost``: its worker sent it
again after its engine crashed with it)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qfnb.local.cluster.jobs import LOST_KEY, SENT_PREFIX
from qfnb.local.cluster.ray_batch import prompt_of, row_line, sent_line, spent_line
from qfnb.protocol.wires.qianfan.batch import ROW_SECONDS_KEY


@dataclass
class FakeJob:
    submission_id: str
    metadata: dict[str, str]
    entrypoint: str
    runtime_env: dict[str, Any]
    rows: list[dict[str, Any]]
    status: str = "PENDING"
    start_time: int = field(default_factory=lambda: int(time.time() * 1000))
    end_time: int | None = None
    message: str = ""
    printed: list[str] = field(default_factory=list)
    #: lines a hostile head (or another job) puts in this job's log before what the job printed
    forged: list[str] = field(default_factory=list)
    #: whether the last line printed sent a row (its answer not printed yet)
    sent_last: bool = False

    @property
    def answered(self) -> int:
        return sum(line.startswith("QFNB-ROW") for line in self.printed)

    @property
    def mark(self) -> str:
        """The journal mark the job was handed (what the cluster's driver prints on each row)."""
        return str((self.runtime_env.get("env_vars") or {}).get("QFNB_JOURNAL_MARK") or "")


def answer(row: dict[str, Any]) -> dict[str, Any]:
    """The fake engine's answer: the prompt echoed, 3 prompt and 2 completion tokens, taking a tenth
    of a second more each row (the worker's ``qfnb_seconds``)."""
    prompt = row["body"]["messages"][-1]["content"]
    body = {"model": row["body"]["model"], "choices": [{"index": 0, "message": {"role": "assistant",
            "content": f"echo {prompt}"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
    return {"custom_id": row["custom_id"], "response": {"status_code": 200, "body": body}, "error": None,
            ROW_SECONDS_KEY: 0.1 * (int(row["custom_id"]) + 1)}


def _cap(row: dict[str, Any]) -> int:
    """The most tokens ``row``'s answer may take, as its sending's line says."""
    sent = sent_line(json.dumps(row), 1, row["body"]["model"])
    assert sent is not None
    return int(json.loads(sent[len(SENT_PREFIX):])["cap"])


class FakeJobs:
    """The Jobs API double: ``list_jobs``, ``get_job_info``, ``get_job_logs``, ``submit_job``, ``stop_job``."""

    def __init__(self, rows_per_read: int = 1) -> None:
        self.jobs: dict[str, FakeJob] = {}
        self.rows_per_read = rows_per_read
        #: prompts whose row fails once (an error row, as an engine's 500 prints it)
        self.fail_once: set[str] = set()
        #: prompts whose worker lost a sending (its engine crashed with it) and sent the row again
        self.lost_once: set[str] = set()

    def submit_job(self, *, entrypoint: str, submission_id: str, runtime_env: dict[str, Any],
                   metadata: dict[str, str]) -> str:
        assert submission_id not in self.jobs, "Ray refuses a submission id twice"
        rows = [json.loads(line) for line in (Path(runtime_env["working_dir"]) / "rows.jsonl").read_text().splitlines()]
        self.jobs[submission_id] = FakeJob(submission_id, dict(metadata), entrypoint, runtime_env, rows)
        return submission_id

    def _advance(self, job: FakeJob) -> None:
        if job.status not in ("PENDING", "RUNNING"):
            return
        job.status = "RUNNING"
        for _ in range(self.rows_per_read):
            if job.answered < len(job.rows):
                row = job.rows[job.answered]
                if not job.sent_last:
                    self._send(job, row)
                prompt = prompt_of(json.dumps(row))
                if prompt in self.fail_once:
                    self.fail_once.discard(prompt)
                    failed = {"custom_id": row["custom_id"], "response": None,
                              "error": {"code": "500", "message": "the engine failed"}}
                    job.printed.append(row_line(failed, prompt, "node-1", job.mark))
                else:
                    lost = [_cap(row)] if prompt in self.lost_once else []
                    self.lost_once.discard(prompt)
                    job.printed.append(row_line({**answer(row), **({LOST_KEY: lost} if lost else {})}, prompt,
                                                "node-1", job.mark))
                job.sent_last = False
                if job.answered < len(job.rows):  # the driver sends the next row as this one ends
                    self._send(job, job.rows[job.answered])
        if job.answered == len(job.rows):
            job.status, job.end_time = "SUCCEEDED", int(time.time() * 1000)

    @staticmethod
    def _send(job: FakeJob, row: dict[str, Any]) -> None:
        sent = sent_line(json.dumps(row), int(row["custom_id"]) + 1, row["body"]["model"], job.mark)
        assert sent is not None
        job.printed.append(sent)
        job.sent_last = True

    def get_job_info(self, submission_id: str) -> FakeJob:
        job = self.jobs[submission_id]
        self._advance(job)
        return job

    def list_jobs(self) -> list[FakeJob]:
        return list(self.jobs.values())

    def get_job_logs(self, submission_id: str) -> str:
        job = self.jobs[submission_id]
        return "starting workers\n" + "".join(line + "\n" for line in [*job.forged, *job.printed])

    def stop_job(self, submission_id: str) -> bool:
        job = self.jobs[submission_id]
        if job.status in ("PENDING", "RUNNING"):
            if job.answered < len(job.rows):  # the row in flight: its prompt read, one token streamed
                job.printed.append(spent_line(job.rows[job.answered]["custom_id"], 3, 1, job.mark))
            job.status, job.end_time = "STOPPED", int(time.time() * 1000)
        return True

    def kill(self, submission_id: str, message: str) -> None:
        """Ray ends the job FAILED with ``message`` (its driver killed: nothing more is printed)."""
        job = self.jobs[submission_id]
        job.status, job.message, job.end_time = "FAILED", message, int(time.time() * 1000)
