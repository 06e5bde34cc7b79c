"""The jobs supervisor: one training-worker subprocess per fine-tune run (Contract 4).

It starts queued runs (at most ``max_concurrent_training`` at once), tails each run's
``progress.jsonl`` into the store (``currentStep``/``lossCurve``/…, Contract 3), reads
``result.json`` when the worker exits, and stops a run with SIGTERM. On start it recovers:
a run whose worker is still alive is adopted, one whose worker died with the previous
server is marked Failed with a clear ``errorMessage``; queued runs stay queued. A run whose worker
was killed (or died with the server) and left a resume point (:mod:`qfnb.local.training.resume`) is
queued again to go on from it, as often as its point moved on since the last time (at most
:data:`MAX_RESUMES` times in a row from one point: a worker that dies there again and again fails).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qfnb.local.domain.state.store import Store
from qfnb.local.domain.state.values import iso
from qfnb.local.engines.call_state import calls
from qfnb.local.engines.store.model_store import ModelStore
from qfnb.local.training import resume
from qfnb.protocol.console.enums import RunStatus
from qfnb.protocol.platform.targets import TargetError, parse_target

log = logging.getLogger("qfnb.local.domain.training.jobs")

ACTIVE = (RunStatus.WAITING.value, RunStatus.RUNNING.value)


def follower_command(target: str) -> tuple[str, ...]:
    """What runs a fine-tune whose spec names a cluster ``target``: that kind's follower
    (:data:`qfnb.protocol.platform.targets.CLUSTERS`), which keeps the training worker's contract."""
    where = parse_target(target, env=False)
    if where is None or where.cluster is None:
        raise TargetError("target", f"{target!r} is not a cluster target")
    return (sys.executable, "-m", where.cluster.train)
#: a RFT run's curves in the store (``[[step, value], ...]``) and the progress.jsonl key each is drawn from
REWARD_CURVES = {"rewardCurve": "reward", "rewardMeanCurve": "reward_mean", "evalRewardCurve": "eval_reward"}
#: how many times in a row a run whose worker was killed is started again from the same resume point
MAX_RESUMES = 3

RESTART_MESSAGE = ("the local platform stopped while this task was running and its training worker is gone; "
                   "start a new task to train again")


@dataclass
class _Worker:
    run_id: int
    job_dir: Path
    pid: int
    proc: subprocess.Popen[bytes] | None = None   # None for a worker adopted after a restart
    offset: int = 0
    stop_requested: bool = False


def _alive(pid: int, job_dir: Path) -> bool:
    """True when ``pid`` is a live process whose command line names ``job_dir``."""
    try:
        os.kill(pid, 0)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError):
        return False
    return str(job_dir) in cmdline


class Supervisor:
    """Runs fine-tune workers in the background and keeps the store in step with them."""

    def __init__(self, store: Store, command: tuple[str, ...], *, max_concurrent: int = 1,
                 poll_interval: float = 0.5, models: ModelStore | None = None) -> None:
        self._store = store
        #: where a finished run's checkpoints are kept, content-addressed (None: they stay in the job dir)
        self._models = models
        self._lock_path = store.path.with_name("supervisor.lock")
        self._lock_fd: int | None = None
        self._command = command
        self._max = max(1, max_concurrent)
        self._poll = poll_interval
        self._workers: dict[int, _Worker] = {}
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        #: told of each run that ended, Done, Failed or Stopped (the run, its metrics): the platform counts its tokens
        self.on_finished: Callable[[dict[str, Any], dict[str, Any]], None] | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the monitor thread. Only one server per data dir supervises (a file lock); another
        server on the same data dir queues runs in the shared store and takes over if the owner exits."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        if self._acquire():
            self.recover()
        self._thread = threading.Thread(target=self._loop, name="qfnb-jobs", daemon=True)
        self._thread.start()

    @property
    def owner(self) -> bool:
        return self._lock_fd is not None

    def _acquire(self) -> bool:
        if self._lock_fd is not None:
            return True
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the lock (the fd is not inherited by the workers)
            self._lock_fd = None

    def recover(self) -> None:
        for run in self._store.all("runs", lambda r: r.get("status") == RunStatus.RUNNING.value):
            job_dir, pid = Path(run["job_dir"]), run.get("pid")
            if pid and _alive(int(pid), job_dir):
                log.info("adopting training worker pid %s of task %s", pid, run["sid"])
                self._workers[run["id"]] = _Worker(run["id"], job_dir, int(pid))
            elif (job_dir / "result.json").exists():
                self._finish(_Worker(run["id"], job_dir, int(pid or 0)), None)
            elif not self._resumed(run):
                log.warning("task %s was running when the server stopped; marking it Failed", run["sid"])
                self._settle(run["id"], status=RunStatus.FAILED.value, errorMessage=RESTART_MESSAGE,
                             finished=time.time(), pid=None)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the monitor; running workers get SIGTERM and their runs are queued again to go on from their
        resume point at the next start (marked Failed without one)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for w in workers:
            self._signal(w, signal.SIGTERM)
        deadline = time.time() + timeout
        for w in workers:
            if w.proc is not None:
                try:
                    w.proc.wait(max(0.1, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    w.proc.kill()
                    w.proc.wait()
            if not self._resumed(self._store.get("runs", w.run_id) or {"id": w.run_id}):  # else: the next start
                self._settle(w.run_id, status=RunStatus.FAILED.value, finished=time.time(), pid=None,
                             errorMessage="the local platform shut down while this task was running")
        self._release()

    # ---- commands ----------------------------------------------------------------------------

    def submit(self, run_id: int) -> None:
        """Queue a prepared run (its ``job_dir`` holds ``spec.json``)."""
        self._store.update("runs", run_id, status=RunStatus.WAITING.value)
        self._wake.set()

    def stop(self, run_id: int) -> bool:
        """Stop a queued or running run. False when it had already finished. Once a run is asked to stop it
        ends Stopped, whatever its worker does (:meth:`_settle`): a run answered ``cancelled`` stays so."""
        active = self._store.update_if("runs", run_id, lambda r: r.get("status") in ACTIVE, stopRequested=True)
        if active is None:
            return False
        with self._lock:  # a launch registers its worker and checks for a stop under this lock too
            worker = self._workers.get(run_id)
            if worker is None and self._store.update_if(
                    "runs", run_id, lambda r: r.get("status") == RunStatus.WAITING.value,
                    status=RunStatus.STOPPED.value, finished=time.time()) is not None:
                return True  # never launched: no launch takes a run asked to stop
            if worker is not None:
                worker.stop_requested = True
        if worker is None:  # being launched, finishing, or supervised by another server on this data dir
            run = self._store.get("runs", run_id) or {}
            worker = _Worker(run_id, Path(str(run.get("job_dir") or "")), int(run.get("pid") or 0))
        self._signal(worker, signal.SIGTERM)
        self._wake.set()
        return True

    def _settle(self, run_id: int, **changes: Any) -> None:
        """Write a run's end (``status`` and the rest): a run asked to stop meanwhile ends Stopped instead,
        with no adapter to serve (the check and the write are one store transaction)."""
        if self._store.update_if("runs", run_id, lambda r: not r.get("stopRequested"), **changes) is None:
            kept = {k: v for k, v in changes.items() if k not in ("status", "adapter_dir", "errorMessage")}
            self._store.update("runs", run_id, **kept, status=RunStatus.STOPPED.value)

    @staticmethod
    def _signal(worker: _Worker, sig: int) -> None:
        with contextlib.suppress(OSError):
            if worker.proc is not None:
                if worker.proc.poll() is None:
                    worker.proc.send_signal(sig)
            elif _alive(worker.pid, worker.job_dir):
                os.kill(worker.pid, sig)

    # ---- the loop ------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                if not self.owner and self._acquire():
                    log.info("taking over supervision of fine-tune runs in %s", self._lock_path.parent)
                    self.recover()
                if self.owner:
                    self.tick()
            except Exception:  # keep supervising whatever one run does
                log.exception("jobs supervisor tick failed")
            self._wake.wait(self._poll)
            self._wake.clear()

    def tick(self) -> None:
        """One pass: tail progress, reap finished workers, start queued runs."""
        with self._lock:
            workers = list(self._workers.values())
        for w in workers:
            self._tail(w)
            code = w.proc.poll() if w.proc is not None else (None if _alive(w.pid, w.job_dir) else -1)
            if code is not None:
                self._tail(w)
                with self._lock:
                    self._workers.pop(w.run_id, None)
                self._finish(w, code)
        with self._lock:
            free = self._max - len(self._workers)
        if free > 0:
            for run in self._store.all("runs", lambda r: r.get("status") == RunStatus.WAITING.value)[:free]:
                self._launch(run)

    def _launch(self, run: dict[str, Any]) -> None:
        """Start a queued run's worker: the run is claimed first (Waiting and not asked to stop -> Running, in
        one store transaction), and a stop that comes while its process starts reaches it once registered."""
        claimed = self._store.update_if("runs", run["id"], lambda r: r.get("status") == RunStatus.WAITING.value
                                        and not r.get("stopRequested"), status=RunStatus.RUNNING.value, pid=None)
        if claimed is None:
            return  # stopped (or taken) since the queue was read
        job_dir = Path(run["job_dir"])
        command = follower_command(run["target"]) if run.get("target") else self._command
        log_file = open(job_dir / "worker.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen([*command, str(job_dir)], stdout=log_file, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, cwd=str(job_dir))
        except OSError as exc:
            self._settle(run["id"], status=RunStatus.FAILED.value, finished=time.time(),
                         errorMessage=f"could not start the training worker: {exc}")
            return
        finally:
            log_file.close()
        calls.count(calls.FINE_TUNE)
        log.info("started training worker pid %s for task %s", proc.pid, run["sid"])
        self._store.update("runs", run["id"], pid=proc.pid,
                           started=run.get("started") if run.get("resumes") else time.time())
        worker = _Worker(run["id"], job_dir, proc.pid, proc)
        with self._lock:
            self._workers[run["id"]] = worker
            worker.stop_requested = bool((self._store.get("runs", run["id"]) or {}).get("stopRequested"))
        if worker.stop_requested:  # a stop came while the process started: it had no worker to signal
            self._signal(worker, signal.SIGTERM)

    def _tail(self, w: _Worker) -> None:
        path = w.job_dir / "progress.jsonl"
        try:
            with open(path, "rb") as fh:
                fh.seek(w.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return
        end = chunk.rfind(b"\n")
        if end < 0:
            return
        w.offset += end + 1
        points = []
        for line in chunk[:end].splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                points.append(json.loads(line))
        if points:
            run = self._store.get("runs", w.run_id)
            if run is not None:
                self._store.update("runs", w.run_id, **progress_update(run, points))

    def _finish(self, w: _Worker, code: int | None) -> None:
        try:
            result: dict[str, Any] = json.loads((w.job_dir / "result.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            result = {}
        status = str(result.get("status") or "")
        run = self._store.get("runs", w.run_id) or {}
        stopped = w.stop_requested or bool(run.get("stopRequested"))
        if status in ("", RunStatus.STOPPED.value) and not stopped and self._resumed(run):
            return  # killed (or stopped by a signal not the user's): queued again from its resume point
        changes: dict[str, Any] = {"finished": time.time(), "pid": None}
        if status in (RunStatus.DONE.value, RunStatus.FAILED.value, RunStatus.STOPPED.value):
            changes["status"] = status
            changes["metrics"] = result.get("metrics") or {}
            if result.get("adapter_dir"):
                changes["adapter_dir"] = str(result["adapter_dir"])
            if run.get("checkpointList") and self._models is not None:
                changes["checkpointList"] = self._stored(run["checkpointList"])
            if status == RunStatus.FAILED.value:
                changes["errorMessage"] = str(result.get("error") or "the training worker reported a failure")
        elif stopped:
            changes["status"] = RunStatus.STOPPED.value
        else:
            changes["status"] = RunStatus.FAILED.value
            resumed = (f" (after {run['resumes']} resumes, the last {run.get('stalledResumes') or 1} from step "
                       f"{run.get('resumedFrom')})" if run.get("resumes") else "")
            changes["errorMessage"] = (f"the training worker exited with code {code} without a result{resumed}; "
                                       + _log_tail(w.job_dir / "worker.log"))
        log.info("task %s finished: %s", w.run_id, changes["status"])
        if self.on_finished is not None:  # every end counted (a failed or cancelled run trained too)
            try:  # counted before the run shows its end: a kill in between counts it at the next start (once)
                self.on_finished({**run, **changes}, changes.get("metrics") or {})
            except Exception:  # counting never fails a run
                log.exception("could not count task %s's usage", w.run_id)
        self._settle(w.run_id, **changes)

    def _resumed(self, run: dict[str, Any]) -> bool:
        """Queue a run whose worker is gone again, to go on from its resume point; False when it has none
        or was resumed from that same point :data:`MAX_RESUMES` times in a row already."""
        if run.get("stopRequested"):
            return False  # asked to stop: it ends Stopped, never queued again
        job_dir = Path(str(run.get("job_dir") or ""))
        step = resume.saved_step(job_dir)
        if step is None:
            return False
        moved_on = run.get("resumedFrom") is None or step > int(run["resumedFrom"])
        stalled = 1 if moved_on else int(run.get("stalledResumes") or 1) + 1  # resumes in a row from this point
        if stalled > MAX_RESUMES:
            return False
        (job_dir / "result.json").unlink(missing_ok=True)  # a signal's Stopped result: the new worker writes its own
        log.warning("task %s's training worker is gone; resuming it from step %d", run.get("sid"), step)
        self._store.update("runs", run["id"], status=RunStatus.WAITING.value, pid=None,
                           resumes=int(run.get("resumes") or 0) + 1, resumedFrom=step, stalledResumes=stalled)
        self._wake.set()
        return True

    def _stored(self, checkpoints: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The checkpoints with their adapters moved into the model store (the job dir's copy goes)."""
        assert self._models is not None
        out = []
        for entry in checkpoints:
            path = Path(str(entry.get("path") or ""))
            if path.is_dir() and self._models.root not in path.parents:
                try:
                    stored = self._models.store_adapter(path)
                except OSError as exc:  # kept in the job dir: still served and published from there
                    log.warning("could not store checkpoint %s: %s", path, exc)
                else:
                    shutil.rmtree(path, ignore_errors=True)
                    entry = {**entry, "path": str(stored)}
            out.append(entry)
        return out


def progress_update(run: dict[str, Any], points: list[dict[str, Any]]) -> dict[str, Any]:
    """Store changes for new ``progress.jsonl`` points (pure).

    Idempotent: a point whose step is already on the curve is skipped, so a supervisor that
    adopts a live worker after a restart (and re-reads its file from the start) adds nothing twice.
    """
    curve = _extended(run.get("lossCurve"), points, "loss")
    evals = _extended(run.get("evalLossCurve"), points, "eval_loss")  # lines of the held-out split's loss
    # a RFT run's: each step's mean reward, its moving mean, the held-out prompts' mean reward
    rewards = {key: _extended(run.get(key), points, line) for key, line in REWARD_CURVES.items()}
    last = points[-1]
    step, total = int(last.get("step", 0)), int(last.get("total_steps", 0) or run.get("totalSteps") or 0)
    stamp = float(last.get("time", 0.0))
    elapsed = stamp - float(run.get("started") or stamp) if stamp > 1e9 else stamp  # epoch time or seconds
    eta = elapsed / step * (total - step) if step and total >= step else None
    saved = list(run.get("checkpointList") or [])
    for p in points:  # a checkpoint line: the adapter saved at that step and its held-out scores
        entry = p.get("checkpoint")
        if isinstance(entry, dict) and int(entry.get("step", 0)) > (saved[-1]["step"] if saved else 0):
            saved.append({**entry, "time": iso(float(p.get("time") or time.time()))})
    # a collapse line: where the held-out answers degenerated (the worker stopped there)
    collapse = next(({**p["collapse"], "time": iso(float(p.get("time") or time.time()))} for p in reversed(points)
                     if isinstance(p.get("collapse"), dict)), run.get("collapse"))
    return {"currentStep": step, "totalSteps": total, "lossCurve": curve, "epoch": last.get("epoch"),
            "elapsedSeconds": round(elapsed, 2), "etaSeconds": None if eta is None else round(eta, 2),
            "phase": last.get("phase") or ("training" if step else run.get("phase")),
            **({"evalLossCurve": evals} if evals or "evalLossCurve" in run else {}),
            **{key: curve for key, curve in rewards.items() if curve},
            **({"checkpointList": saved} if saved else {}),
            **({"collapse": collapse} if collapse else {})}


def _extended(curve: Any, points: list[dict[str, Any]], key: str) -> list[list[float]]:
    """``curve`` (``[[step, value], ...]``) with the points' ``key`` values of later steps appended."""
    out = list(curve or [])
    last_step = out[-1][0] if out else 0
    for p in points:
        if "step" in p and p.get(key) is not None and int(p["step"]) > last_step:
            last_step = int(p["step"])
            out.append([last_step, float(p[key])])
    return out


def _log_tail(path: Path, limit: int = 600) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return "no worker log"
    return "worker log: " + (text[-limit:] if text else "(empty)")
