"""The one Ray Jobs API client of qfnb, and what a qfnb job on a Ray cluster prints into its log for
the other side to read back (the log is the only channel a Jobs API client has to a job). The client's
batch backend (``qfnb.resources.batch.ray_jobs``), the local platform's fine-tune follower and the cluster's
entrypoints share it; Ray itself loads only when a head is reached (:func:`connect`)."""

from __future__ import annotations

import concurrent.futures
import importlib.metadata
import json
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from qfnb.protocol.platform.targets import JobTarget, TargetError

__all__ = ["AGENT_WAIT", "API_TIMEOUT", "FILE_PREFIX", "JOURNAL_ENV", "JOURNAL_KEY", "LOST_KEY", "MAX_LOG_BYTES",
           "MAX_LOST_SENDS", "MIN_RAY", "NODE_KEY", "PROMPT_KEY", "RESULT_PREFIX", "ROW_PREFIX", "SENT_PREFIX",
           "SPENT_PREFIX", "TRAIN_PREFIX", "call", "connect", "job_env", "job_logs", "log_items", "print_line",
           "ray_version_problem", "shipped_qfnb", "submit", "unfinished"]

#: the oldest Ray whose Jobs API this side speaks (submission ids, metadata, working_dir uploads)
MIN_RAY = (2, 9)
#: a fine-tune's progress line (the worker's ``progress.jsonl`` line, as it was written)
TRAIN_PREFIX = "QFNB-TRAIN "
#: a piece of a file the job sends back: ``{"path", "part", "parts", "data"}`` (``data`` base64)
FILE_PREFIX = "QFNB-FILE "
#: a fine-tune's result (the worker's ``result.json``), printed last
RESULT_PREFIX = "QFNB-RESULT "
#: a batch job's finished row (``QFNB-ROW {row json}``): the journal a qfnb batch on a Ray cluster keeps
#: (:mod:`qfnb.local.cluster.ray_batch` prints it, ``qfnb.resources.batch.ray_jobs`` reads it)
ROW_PREFIX = "QFNB-ROW "
#: a batch job's row about to be sent to a worker (``QFNB-SENT {"custom_id", "cap"}``, printed before it is
#: sent): a row sent and never printed by that attempt was lost with it (its driver killed), and paid: one
#: request and its answer at its ``cap`` by that attempt, its prompt as its answer's by the attempt that answers it
SENT_PREFIX = "QFNB-SENT "
#: a stopped batch job's row that was in flight (``QFNB-SPENT {"custom_id", "usage"}``): the tokens it had
#: used, counted in that attempt's ledger entry although the row is answered again
SPENT_PREFIX = "QFNB-SPENT "
#: a row line's own fields (not the row's): the input's last user message, and the Ray node whose engine
#: answered it (its node id)
PROMPT_KEY = "qfnb_prompt"
NODE_KEY = "qfnb_node"
#: a row line's sendings its worker lost before the one that ended it (``[cap, ...]``): each one an engine
#: had when it went away (its answer lost with it), sent again by the worker, and paid as a lost send is
LOST_KEY = "qfnb_lost"
#: the most lost sendings one row line may carry: a worker's tries at a row
#: (:data:`qfnb.local.domain.batch.runner.MAX_ATTEMPTS`) less the one that ended it
MAX_LOST_SENDS = 7
#: a row line's mark of the submission that printed it: the submitter's random mark for that one job,
#: handed to the job in :data:`JOURNAL_ENV`; a row without its own job's mark is refused (another job
#: on a shared cluster printed it under this job's name)
JOURNAL_KEY = "qfnb_journal"
JOURNAL_ENV = "QFNB_JOURNAL_MARK"
#: seconds one Jobs API call may take (a head that does not answer blocks nothing longer)
API_TIMEOUT = 60.0
#: the largest job log read (a qfnb job prints a line a row; a log past this is refused, not read on)
MAX_LOG_BYTES = 64 << 20
#: seconds a just-started head may take before its job agent takes submissions
AGENT_WAIT = 60.0


def connect(target: JobTarget) -> Any:
    """A ``JobSubmissionClient`` on ``target``'s dashboard; TargetError naming ``target`` when Ray is
    not installed, no head answers there or its Ray is one this side does not speak."""
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise TargetError("target", f"{target} needs Ray: pip install 'qfnb[ray]'") from None
    try:
        client = call(target, JobSubmissionClient, target.url)
    except (ConnectionError, RuntimeError) as exc:  # RuntimeError: Ray's own version check
        raise TargetError("target", f"no Ray head answers at {target} ({target.url}): "
                                    f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__} (start one with "
                                    "`ray start --head --dashboard-host 0.0.0.0`, or check the port: the "
                                    "dashboard's, 8265 by default)") from None
    problem = ray_version_problem(str(vars(client).get("_server_ray_version") or ""))  # what the head said
    if problem is not None:
        raise TargetError("target", f"{target} {problem}")
    return client


_CALLS = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="qfnb-ray-jobs")


def call(target: JobTarget, fn: Callable[..., Any], *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
    """One Jobs API call (``fn``: a ``JobSubmissionClient`` method), given up after ``timeout``
    seconds with TargetError naming the target (Ray's client sets no timeout of its own: a silent
    head held ``batch_do`` for good)."""
    timeout = API_TIMEOUT if timeout is None else timeout
    future = _CALLS.submit(fn, *args, **kwargs)
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        raise TargetError("target", f"{target}'s head did not answer a Jobs API call in {timeout:g} s "
                                    "(jobs.API_TIMEOUT); is it overloaded or gone?") from None


def job_logs(client: Any, target: JobTarget, submission_id: str) -> str:
    """A job's log, at most :data:`MAX_LOG_BYTES` (TargetError past it: a qfnb job's log of rows is
    far smaller; a bigger one is not kept in memory poll after poll)."""
    logs = str(call(target, client.get_job_logs, submission_id))
    if len(logs) > MAX_LOG_BYTES:
        raise TargetError("target", f"{target}: the log of Ray job {submission_id} is {len(logs):,} characters, "
                                    f"past {MAX_LOG_BYTES:,} (jobs.MAX_LOG_BYTES); it is not read")
    return logs


def shipped_qfnb(extras: Sequence[str]) -> dict[str, Any]:
    """The ``runtime_env`` that runs this very qfnb on a remote cluster: its package folder as a
    ``py_modules`` entry (Ray uploads it by its content hash) and its ``extras``' requirements pinned
    to the versions installed here. ``qfnb`` itself is never resolved from a package index (it is no
    registered name there: whoever took it would run code on every worker)."""
    package = Path(__file__).resolve().parents[2]
    return {"py_modules": [str(package)], "pip": {"packages": pinned_requirements(extras), "pip_check": False}}


def job_env(target: JobTarget, working_dir: str, env_vars: Mapping[str, str], extras: Sequence[str],
            given: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """A qfnb job's python and ``runtime_env``: this interpreter and qfnb on a head on this machine, else this
    qfnb shipped (:func:`shipped_qfnb`); ``given`` (the caller's runtime_env) adds to it, its env vars under ours."""
    env: dict[str, Any] = {"working_dir": working_dir, "env_vars": dict(env_vars)}
    if target.same_machine:
        env["env_vars"]["PYTHONPATH"] = str(Path(__file__).resolve().parents[3])  # the folder holding qfnb
    else:
        env.update(shipped_qfnb(extras))
    if given:
        env.update({k: v for k, v in given.items() if k not in ("working_dir", "env_vars")})
        env["env_vars"] = {**dict(given.get("env_vars") or {}), **env["env_vars"]}
    return (sys.executable if target.same_machine else "python"), env


_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")
_NAME = re.compile(r"[A-Za-z0-9._-]+")


def pinned_requirements(extras: Sequence[str]) -> list[str]:
    """qfnb's requirements (its core and ``extras``, with the extras those name: ``qfnb[local]``
    names ``qfnb[server]``), each pinned to the public version installed here (as declared where it
    is not installed)."""
    try:
        declared = [(r.split(";")[0].strip(), _EXTRA.search(r)) for r in importlib.metadata.requires("qfnb") or ()]
    except importlib.metadata.PackageNotFoundError:
        return []
    wanted, grew = set(extras), True
    while grew:
        named = {e for req, extra in declared if extra and extra.group(1) in wanted and req.startswith("qfnb[")
                 for e in req[5:].split("]")[0].split(",")}
        grew, wanted = not named <= wanted, wanted | named
    pins = set()
    for requirement, extra in declared:
        name = _NAME.match(requirement)
        if (extra and extra.group(1) not in wanted) or name is None or name.group().lower() == "qfnb":
            continue
        try:  # a local build's label (torch's "+cpu") is no version an index has
            pins.add(f"{name.group()}=={importlib.metadata.version(name.group()).split('+')[0]}")
        except importlib.metadata.PackageNotFoundError:
            pins.add(requirement)
    return sorted(pins)


def submit(client: Any, target: JobTarget, *, sleep: Callable[[float], None] = time.sleep, **job: Any) -> None:
    """``submit_job``; a head that has just started answers 500 "No available agent" until its job
    agent is up: tried again each second for :data:`AGENT_WAIT` seconds, then TargetError naming the
    target and the likely cause (nothing was run)."""
    deadline = time.monotonic() + AGENT_WAIT
    while True:
        try:
            call(target, client.submit_job, **job)
            return
        except RuntimeError as exc:
            if "No available agent" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise TargetError("target", f"{target}'s head takes no jobs: its job agent did not start in "
                                            f"{AGENT_WAIT:.0f} s (often its port, 52365 by default, is taken by "
                                            "another Ray on that node: start the head with "
                                            "--dashboard-agent-listen-port set to a free port); nothing was run"
                                  ) from None
            sleep(1.0)


def ray_version_problem(version: str) -> str | None:
    """Why a head running Ray ``version`` is one this side cannot speak to; None when it can."""
    try:
        major, minor = (int(p) for p in version.split(".")[:2])
    except ValueError:
        return f"did not say which Ray it runs ({version!r})"
    if major != MIN_RAY[0] or (major, minor) < MIN_RAY:
        return (f"runs Ray {version}; qfnb speaks Ray {MIN_RAY[0]}.x from {MIN_RAY[0]}.{MIN_RAY[1]} "
                "(install a matching ray on the cluster)")
    return None


def print_line(line: str) -> None:
    """One line of a job's log, flushed at once (the log is the journal the other side reads)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def unfinished(error: str | None, status: str = "Failed") -> dict[str, Any]:
    """A training run's ``result.json`` that brought no adapter back: its ``status`` and why."""
    return {"status": status, "metrics": {}, "adapter_dir": None, "error": error}


def log_items(logs: str, prefixes: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """``(prefix, object)`` for each JSON object a job's log holds after one of ``prefixes``, in the
    order printed (a torn line is skipped; Ray may put a worker's ``(pid=...)`` before the prefix)."""
    marks = re.compile("|".join(map(re.escape, prefixes)))
    found = []
    for mark in filter(None, map(marks.search, logs.splitlines())):
        try:
            item = json.loads(mark.string[mark.end():])
        except ValueError:
            continue
        if isinstance(item, dict):
            found.append((mark.group(), item))
    return found
