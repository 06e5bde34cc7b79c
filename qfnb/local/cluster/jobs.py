"""The one Ray Jobs API client of qfnb, and what a qfnb job on a Ray cluster prints into its log for
the other side to read back (the log is the only channel a Jobs API client has to a job). The client's
batch backend (``qfnb.resources.batch_ray``), the local platform's fine-tune follower and the cluster's
entrypoints share it; Ray itself loads only when a head is reached (:func:`connect`)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from qfnb.protocol.platform.targets import JobTarget, TargetError

__all__ = ["AGENT_WAIT", "FILE_PREFIX", "MIN_RAY", "NODE_KEY", "PROMPT_KEY", "RESULT_PREFIX", "ROW_PREFIX",
           "SPENT_PREFIX", "TRAIN_PREFIX", "connect", "log_items", "ray_version_problem", "submit"]

#: the oldest Ray whose Jobs API this side speaks (submission ids, metadata, working_dir uploads)
MIN_RAY = (2, 9)
#: a fine-tune's progress line (the worker's ``progress.jsonl`` line, as it was written)
TRAIN_PREFIX = "QFNB-TRAIN "
#: a piece of a file the job sends back: ``{"path", "part", "parts", "data"}`` (``data`` base64)
FILE_PREFIX = "QFNB-FILE "
#: a fine-tune's result (the worker's ``result.json``), printed last
RESULT_PREFIX = "QFNB-RESULT "
#: a batch job's finished row (``QFNB-ROW {row json}``): the journal a qfnb batch on a Ray cluster keeps
#: (:mod:`qfnb.local.cluster.ray_batch` prints it, ``qfnb.resources.batch_ray`` reads it)
ROW_PREFIX = "QFNB-ROW "
#: a stopped batch job's row that was in flight (``QFNB-SPENT {"custom_id", "usage"}``): the tokens it had
#: used, counted in that attempt's ledger entry although the row is answered again
SPENT_PREFIX = "QFNB-SPENT "
#: a row line's own fields (not the row's): the input's last user message, and the Ray node whose engine
#: answered it (its node id)
PROMPT_KEY = "qfnb_prompt"
NODE_KEY = "qfnb_node"
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
        client = JobSubmissionClient(target.url)
    except (ConnectionError, RuntimeError) as exc:  # RuntimeError: Ray's own version check
        raise TargetError("target", f"no Ray head answers at {target} ({target.url}): "
                                    f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__} (start one with "
                                    "`ray start --head --dashboard-host 0.0.0.0`, or check the port: the "
                                    "dashboard's, 8265 by default)") from None
    problem = ray_version_problem(str(vars(client).get("_server_ray_version") or ""))  # what the head said
    if problem is not None:
        raise TargetError("target", f"{target} {problem}")
    return client


def submit(client: Any, target: JobTarget, *, sleep: Callable[[float], None] = time.sleep, **job: Any) -> None:
    """``submit_job``; a head that has just started answers 500 "No available agent" until its job
    agent is up: tried again each second for :data:`AGENT_WAIT` seconds, then TargetError naming the
    target and the likely cause (nothing was run)."""
    deadline = time.monotonic() + AGENT_WAIT
    while True:
        try:
            client.submit_job(**job)
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


def log_items(logs: str, prefixes: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """``(prefix, object)`` for each JSON object a job's log holds after one of ``prefixes``, in the
    order printed (a torn line is skipped; Ray may put a worker's ``(pid=...)`` before the prefix)."""
    found = []
    for line in logs.splitlines():
        for prefix in prefixes:
            at = line.find(prefix)
            if at < 0:
                continue
            try:
                item = json.loads(line[at + len(prefix):])
            except ValueError:
                break
            if isinstance(item, dict):
                found.append((prefix, item))
            break
    return found
