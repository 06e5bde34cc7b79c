"""Finding fine-tunes again: ``%qftrain --list`` and the ids ``%qftrain --attach`` accepts.

Jobs live on the platform (the local daemon, or the cloud), not in the kernel, so a kernel
restart loses nothing: this module asks the platform which tasks exist and turns any id the
user was shown — pipeline (``ppl-…``), job (``job-…``) or task (``task-…``) — into a task id.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from qfnb.resources.console import FineTune
from qfnb.trainer.records import persist

if TYPE_CHECKING:
    import pandas as pd

RUNNING = ("Waiting", "Running")


def platform_tasks() -> list[dict[str, Any]]:
    """Every fine-tune task of the platform, newest first (v2 ``DescribeFineTuning*``)."""
    tasks: list[dict[str, Any]] = []
    for job in FineTune.V2.job_list(max_keys=1000).parsed.result.job_list:
        listed = FineTune.V2.task_list(job_id=job.job_id, max_keys=1000).parsed.result.task_list
        tasks.extend({**t.model_dump(by_alias=True, exclude_unset=True), "jobName": job.name or t.job_name}
                     for t in listed)
    return sorted(tasks, key=lambda t: str(t.get("createDate") or ""), reverse=True)


def wall_time(stamp: Any) -> float | None:
    """An ISO time of the platform's (``2026-11-23T20:41:27Z``) as a Unix time; None if absent."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _age(created: str | None, now: float) -> str:
    at = wall_time(created)
    if at is None:
        return created or ""
    seconds = now - at
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{max(seconds, 0):.0f} s ago"


def jobs_frame(tasks: list[dict[str, Any]] | None = None, now: float | None = None) -> pd.DataFrame:
    """``%qftrain --list``: one row per task (task, job, model, status, progress, age)."""
    import pandas as pd

    tasks = platform_tasks() if tasks is None else tasks
    now = time.time() if now is None else now
    rows = [{"task": t.get("taskId"), "job": t.get("jobId"), "name": t.get("jobName"), "model": t.get("model"),
             "status": t.get("runStatus"), "progress": t.get("runProgress"), "age": _age(t.get("createDate"), now)}
            for t in tasks]
    return pd.DataFrame(rows, columns=["task", "job", "name", "model", "status", "progress", "age"])


def _pipeline_task(pipeline_id: str) -> str | None:
    try:
        record = persist.read_record(pipeline_id)
    except Exception:
        return None
    for action in record.get("actions") or []:
        task = (action.get("extra") or {}).get("task_id")
        if task:
            return str(task)
    return None


def resolve_task(word: str | None, tasks: list[dict[str, Any]] | None = None) -> str:
    """The task id behind ``word``: a task, job or pipeline id; None = the newest running task."""
    if word and word.startswith("task-"):
        return word
    if word and not word.startswith("job-"):
        task = _pipeline_task(word)
        if task is None:
            raise UsageError(f"{word!r} is not a task (task-…), job (job-…) or saved pipeline id of this data dir; "
                             "%qftrain --list shows the jobs")
        return task
    tasks = platform_tasks() if tasks is None else tasks
    if word:
        of_job = [t for t in tasks if t.get("jobId") == word]
        if not of_job:
            raise UsageError(f"no fine-tune job {word!r} on the platform; %qftrain --list shows the jobs")
        return str(of_job[0]["taskId"])
    running = [t for t in tasks if t.get("runStatus") in RUNNING]
    if not running:
        raise UsageError("no fine-tune is running; %qftrain --list shows the finished ones "
                         "(attach to one with %qftrain --attach <task>)")
    return str(running[0]["taskId"])
