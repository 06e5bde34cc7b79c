"""The platform's side of a RFT run's client rewards: hand a run's pending samples to its reward client
and write the rewards (or the error its reward raised) back for the worker.

The worker and the platform share ``<job_dir>/rewards/`` (:mod:`qfnb.local.training.rewards` writes the
requests and reads the answers). These functions back qfnb's two v2 console actions,
``DescribeFineTuningRewardRequests`` (a long poll: it answers as soon as a request is pending, or after
``waitSeconds``) and ``SubmitFineTuningRewards``; both are IAM-signed as every console call, so only the
platform's account, the one that created the run, reaches them.

A long poll waits on the event loop, not in a worker thread: each look at the folder and the run is a
short call on the shared thread pool, so pollers cannot starve the daemon's other blocking work, and at
most :data:`MAX_WAITING` wait at once per daemon (one more is :class:`TooManyPolls`).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

from qfnb.local.domain.state.site import TrainingSite
from qfnb.local.domain.state.values import BodyError
from qfnb.local.training.rewards import answer_path, claimed_path, request_path
from qfnb.protocol.console.enums import RunStatus
from qfnb.protocol.console.rewards import CLIENT, reward_problem
from qfnb.protocol.platform.files import write_private_json

#: the longest long poll a fetch may ask for
MAX_WAIT_S = 20.0
#: how often a long poll looks for a new request
POLL_S = 0.1
#: the long polls one daemon lets wait at once (a reward client polls with one; a few runs' clients fit)
MAX_WAITING = 32
#: the longest error message kept from a reward client
MAX_ERROR = 4000

_REQUEST = re.compile(r"request-(\d+)\.json")
_ACTIVE = (RunStatus.WAITING.value, RunStatus.RUNNING.value)


class TooManyPolls(Exception):
    """A long poll beyond :data:`MAX_WAITING` waiting ones (the route answers 429 TooManyRequests)."""


def _client_run(platform: TrainingSite, task_id: Any) -> dict[str, Any]:
    run = platform.store.get_or_raise("runs", task_id, BodyError("taskId", f"task {task_id!r} not found"))
    if run.get("rewardSource") != CLIENT:
        raise BodyError("taskId", f"task {run['sid']} takes no client rewards (it is a "
                        f"{run.get('trainMode') or 'SFT'} run" + (f" scored by {run['rewardSource']})"
                                                                   if run.get("rewardSource") else ")"))
    return run


def _pending(folder: Path) -> list[dict[str, Any]]:
    """The requests the worker waits on, oldest first."""
    out = []
    found = sorted((int(m.group(1)), p) for p in folder.glob("request-*.json") if (m := _REQUEST.fullmatch(p.name)))
    for seq, path in found:
        if answer_path(folder, seq).exists():
            continue
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):  # answered and removed meanwhile
            continue
    return out


def _look(platform: TrainingSite, run: dict[str, Any], folder: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The pending requests and the run as stored now (a short blocking read: run it in a thread)."""
    return _pending(folder), platform.store.get("runs", run["id"]) or run


def _checked(platform: TrainingSite, body: dict[str, Any]) -> tuple[dict[str, Any], Path, float]:
    """The run, its rewards folder and the wait a fetch asks for; BodyError naming the field otherwise."""
    run = _client_run(platform, body.get("taskId"))
    wait = body.get("waitSeconds", 0)
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait <= MAX_WAIT_S:
        raise BodyError("waitSeconds", f"must be a number of seconds in [0, {MAX_WAIT_S:g}], got {wait!r:.40}")
    return run, Path(run["job_dir"]) / "rewards", float(wait)


def _handed(run: dict[str, Any], folder: Path, requests: list[dict[str, Any]]) -> dict[str, Any]:
    """The answer, each request marked claimed: the worker now waits rewardWaitSeconds for its rewards."""
    for req in requests:
        claimed = claimed_path(folder, int(req["requestId"]))
        if not claimed.exists():
            claimed.touch()
    return {"taskId": run["sid"], "runStatus": run.get("status"), "requests": requests,
            **({"errorMessage": run["errorMessage"]} if run.get("errorMessage") else {})}


async def fetch(platform: TrainingSite, body: dict[str, Any]) -> dict[str, Any]:
    """``DescribeFineTuningRewardRequests``: ``{taskId, runStatus, requests: [{requestId, step, kind,
    samples: [{prompt, completion, fields}]}]}``; waits up to ``waitSeconds`` for one (default 0), on the
    event loop, looking every :data:`POLL_S` in a thread only for the look."""
    run, folder, wait = await run_in_threadpool(_checked, platform, body)
    requests, run = await run_in_threadpool(_look, platform, run, folder)
    if not requests and run.get("status") in _ACTIVE and wait > 0:
        if platform.reward_polls >= MAX_WAITING:
            raise TooManyPolls(f"{MAX_WAITING} reward long polls are waiting already; poll with fewer clients "
                               "at once, or retry shortly")
        platform.reward_polls += 1
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while not requests and run.get("status") in _ACTIVE and (left := deadline - loop.time()) > 0:
                await asyncio.sleep(min(POLL_S, left))
                requests, run = await run_in_threadpool(_look, platform, run, folder)
        finally:
            platform.reward_polls -= 1
    return await run_in_threadpool(_handed, run, folder, requests)


def submit(platform: TrainingSite, body: dict[str, Any]) -> dict[str, Any]:
    """``SubmitFineTuningRewards``: ``{taskId, requestId, rewards: [float, ...]}`` (one per sample, in
    order), or ``{taskId, requestId, error: "..."}`` to stop the run with that error."""
    run = _client_run(platform, body.get("taskId"))
    seq = body.get("requestId")
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise BodyError("requestId", f"must be the integer id of a fetched request, got {seq!r:.40}")
    folder = Path(run["job_dir"]) / "rewards"
    try:
        req = json.loads(request_path(folder, seq).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise BodyError("requestId", f"task {run['sid']} has no pending reward request {seq} (answered already, "
                        "or the run moved on)") from None
    error = body.get("error")
    if error is not None:
        answer: dict[str, Any] = {"error": str(error)[:MAX_ERROR] or "the reward client reported an error"}
    else:
        rewards = body.get("rewards")
        count = len(req.get("samples") or [])
        if not isinstance(rewards, list) or len(rewards) != count:
            raise BodyError("rewards", f"must be a list of {count} numbers, one per sample of request {seq}")
        for i, value in enumerate(rewards):
            problem = reward_problem(value)
            if problem is not None:
                raise BodyError(f"rewards[{i}]", problem)
        answer = {"rewards": [float(v) for v in rewards]}
    if not write_private_json(answer_path(folder, seq), answer, exclusive=True):
        raise BodyError("requestId", f"reward request {seq} of task {run['sid']} was answered already")
    return {"taskId": run["sid"], "requestId": seq, "accepted": True}
