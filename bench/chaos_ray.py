"""The chaos bench's Ray phase: a batch on a one-node Ray cluster whose driver is SIGKILLed at seeded
moments, and run again as a user runs the cell again (``batch_do`` with the same rows sends only the
rows no attempt answered).

The head is the tests' one-node head (``tests/batch/ray_head.py``: 127.0.0.1, free ports, its own
temp dir, stopped by its process group); its workers' engines are the bench's engine
(``QFNB_ENGINES`` in the head's environment). A kill lands a random moment after the attempt
answered its first row: the rows at the workers go with it, and so does a row whose answer had
come back to the driver but whose journal line (``QFNB-ROW``) was not printed yet. A SIGKILL of the
engine (``--ray-engine-kills``) lands the same way: the workers send their rows in flight again once it
is back, and the sendings it had are paid (each row line's ``qfnb_lost``).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos_books import BATCH_MODEL, Kill, engine_requests, lost_to_a_kill, row_key
from chaos_engine import answer_words

log = logging.getLogger("bench.chaos")
#: how a Ray attempt's ledger row names its job
RAY_JOB = "batch-job qfnb-"


@dataclass
class RaySeen:
    """What the user's side saw of the Ray batch."""

    attempts: list[str] = field(default_factory=list)
    state: Any = None
    results: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def driver_pid(jobs: Any, submission_id: str, timeout: float = 120.0) -> int | None:
    """The pid of a running attempt's driver (the entrypoint's Python, as Ray registered it); None
    when the attempt ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = jobs.get_job_info(submission_id)
        driver = getattr(info, "driver_info", None)
        if driver is not None and getattr(driver, "pid", None):
            return int(driver.pid)
        if str(getattr(info.status, "value", info.status)) not in ("PENDING", "RUNNING"):
            return None
        time.sleep(0.2)
    raise RuntimeError(f"Ray job {submission_id} registered no driver in {timeout:.0f} s")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is gone too
        return fh.read().rsplit(")", 1)[1].split()[0] == "Z"


def run_ray(rows: int, kills: int, seed: int, work: Path, t0: float, landed: list[tuple[float, Kill]],
            engine: Any = None, engine_kills: int = 0) -> RaySeen:
    """The Ray batch of ``rows`` rows under ``kills`` SIGKILLs of its driver and ``engine_kills`` of its
    workers' ``engine`` (``kill(sig)``, ``start()``; each kill appended to ``landed``): a worker sends
    its rows in flight again once the engine is back."""
    from ray.job_submission import JobSubmissionClient
    from ray_head import ray_head

    from qfnb.resources import ChatCompletion

    seen = RaySeen()
    rng = random.Random(f"ray {seed}")
    prompts = [[{"role": "user", "content": row_key("ray", i)}] for i in range(rows)]
    chat = ChatCompletion(model=BATCH_MODEL)
    (work / "ray").mkdir()
    with ray_head(work / "ray") as head:
        jobs = JobSubmissionClient(head.replace("ray://", "http://"))
        job = chat.batch_do(prompts, target=head, max_output_tokens=24)
        seen.attempts.append(job.task_id)
        picks = random.Random(f"ray engine {seed}")
        engine_at = set(picks.sample(range(kills + engine_kills), engine_kills)) if engine is not None else set()
        for turn in range(kills + len(engine_at)):
            before = job.state().done
            while not (state := job.state()).finished and state.done <= before:
                time.sleep(0.1)
            if turn in engine_at:
                _kill_engine(engine, job, picks, t0, landed)
                continue
            time.sleep(rng.uniform(0.0, 2.0))
            pid = None if job.state().finished else driver_pid(jobs, job.task_id)
            if pid is None:
                log.info("the Ray batch ended before its driver's kill")
                break
            when = time.time()
            os.kill(pid, signal.SIGKILL)
            while not _gone(pid):
                time.sleep(0.01)
            kill = Kill(when - t0, "ray driver", signal.SIGKILL, round(rng.uniform(0.2, 2.0), 2), time.time())
            landed.append((when, kill))
            log.info("%6.1f s  SIGKILL ray driver (%s, %d rows answered); run again in %.1f s", when - t0,
                     job.task_id, job.state().done, kill.pause)
            while not job.state().finished:
                time.sleep(0.2)
            # the driver's rows go with it once Ray has ended the attempt: a worker may send one it was
            # handed until its actor is killed (its owner gone), so the kill is over only then
            kill.gone = time.time()
            time.sleep(kill.pause)
            job = chat.batch_do(prompts, target=head, max_output_tokens=24)  # the user runs the cell again
            seen.attempts.append(job.task_id)
        seen.state = job.wait(interval=0.5)
        seen.results = list(job.results())
    return seen


def _kill_engine(engine: Any, job: Any, rng: random.Random, t0: float, landed: list[tuple[float, Kill]]) -> None:
    """SIGKILL the workers' engine a random moment after the attempt answered a row, and start it
    again after a pause (as a supervisor would); the workers retry their rows in flight meanwhile."""
    time.sleep(rng.uniform(0.0, 1.5))
    if job.state().finished:
        return
    when = time.time()
    engine.kill(signal.SIGKILL)
    kill = Kill(when - t0, "engine", signal.SIGKILL, round(rng.uniform(0.2, 2.0), 2), time.time())
    landed.append((when, kill))
    log.info("%6.1f s  SIGKILL engine under the Ray workers (%d rows answered); back in %.1f s", when - t0,
             job.state().done, kill.pause)
    time.sleep(kill.pause)
    engine.start()


def ray_report(args: Any, work: Path, seen: RaySeen, landed: list[tuple[float, Kill]], ledger_rows: list[Any]
               ) -> list[str]:
    """The Ray batch's checks: each row once and its own, every repeat at the engine in flight at a
    kill, and the engine's tokens for its rows against the ledger's rows of its attempts."""
    problems = list(seen.errors)
    answers = [r for r in seen.results if not isinstance(r, Exception) and r is not None]
    lost = [i for i, r in enumerate(seen.results) if r is None or isinstance(r, Exception)]
    wrong = [i for i, r in enumerate(seen.results) if r is not None and not isinstance(r, Exception)
             and str(r["result"]) != " ".join(answer_words(row_key("ray", i)))]
    state = seen.state
    log.info("ray batch: %s over %d attempts; %d of %d rows answered, rows lost %d, not their own %d",
             getattr(state, "status", "?"), len(seen.attempts), len(answers), args.ray_rows,
             len(lost) + max(0, args.ray_rows - len(seen.results)), len(wrong))
    if lost or wrong or len(seen.results) != args.ray_rows:
        problems.append(f"ray rows lost {lost[:5]} / not their own {wrong[:5]} / {len(seen.results)} results")
    sent = [r for r in engine_requests(work / "engine.jsonl") if r.key.startswith("ray row ")]
    by_key: dict[str, list[Any]] = {}
    for req in sent:
        by_key.setdefault(req.key, []).append(req)
    repeats = [req for reqs in by_key.values() for req in reqs[:-1]]
    unexplained = [req for req in repeats if not lost_to_a_kill(req, landed, args.window)]
    prompt, completion = sum(r.prompt for r in sent), sum(r.completion for r in sent)
    rows = [r for r in ledger_rows if r.api == "batch-job" and str(r.job or "").startswith(RAY_JOB)]
    paid_in, paid_out = sum(r.prompt_tokens for r in rows), sum(r.completion_tokens for r in rows)
    log.info("ray engine: %d requests for %d rows; %d sent again, %d of them not in flight at a kill", len(sent),
             len(by_key), len(repeats), len(unexplained))
    log.info("ray ledger: %d attempts' rows; prompt %d, engine %d (%s); completion %d, engine %d", len(rows), paid_in,
             prompt, "=" if paid_in == prompt else "MISMATCH", paid_out, completion)
    problems += [f"ray {r.key!r} sent again though its sending {r.rid} was at no kill" for r in unexplained]
    if paid_in != prompt:
        problems.append(f"ray batch: engine prompt tokens {prompt} != the ledger's {paid_in}")
    if paid_out < completion:
        problems.append(f"ray batch: the ledger's completion {paid_out} < the engine's {completion}")
    return problems
