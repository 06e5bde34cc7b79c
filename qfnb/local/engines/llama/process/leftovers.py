"""Engines a killed platform process left running: found by their pid files and stopped.

Engines die with their platform (``spawn.popen`` sets ``PR_SET_PDEATHSIG`` from a long-lived
thread); these checks are for what an older platform or a failed start left behind. A live
platform's engine is never touched. A leftover gets SIGTERM, then SIGKILL if it has not gone after
:data:`GRACE_SECONDS` (a llama-server whose decode loop is stuck in one step ignores SIGTERM: its
handler only asks that loop to stop); SIGKILL goes to the same pid only after checking that it is
still that orphaned engine, started at the same moment (not a new process that took the pid).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path

log = logging.getLogger("qfnb.local.engines")

#: seconds a leftover engine has to exit on SIGTERM before it is killed
GRACE_SECONDS = 3.0


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` after the command name (field 3, the state, first), or None: no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def started_at(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (None: gone or a zombie): with the pid,
    it names one process, never one that took the pid later."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    with contextlib.suppress(ValueError, IndexError):
        return int(fields[19])
    return None


def orphaned_engine(pid: int) -> bool:
    """Whether ``pid`` is a ``llama-server`` whose platform process is gone (its parent is no
    longer a qfnb process): one a live platform runs is never touched."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        ppid = int((_stat_fields(pid) or [])[1])
    except (OSError, ValueError, IndexError):
        return False
    if not argv0.endswith(b"llama-server"):
        return False
    try:
        return ppid <= 1 or b"qfnb" not in Path(f"/proc/{ppid}/cmdline").read_bytes()
    except OSError:
        return True


def reap_leftovers(log_dir: Path, grace: float = GRACE_SECONDS) -> list[int]:
    """Stop every engine a previous platform process of this data dir left running (its pid
    files in ``log_dir`` name a live, orphaned ``llama-server``): SIGTERM, then SIGKILL for those
    still there after ``grace`` seconds. Returns the pids stopped."""
    stopping: dict[int, int] = {}  # pid -> its start time
    for pid_file in sorted(log_dir.glob("engine-*.pid")) if log_dir.is_dir() else ():
        pid = 0
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text())
        born = started_at(pid) if pid > 0 else None
        if born is not None and orphaned_engine(pid):
            log.warning("stopping an engine (pid %d) left running by a previous platform process", pid)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
                stopping[pid] = born
        elif born is not None:
            continue  # a live platform's engine
        pid_file.unlink(missing_ok=True)
    deadline = time.monotonic() + grace
    while any(started_at(p) == b for p, b in stopping.items()) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid, born in stopping.items():
        if started_at(pid) == born and orphaned_engine(pid):  # the same process, still there
            log.warning("engine pid %d ignored SIGTERM for %.0f s: killing it", pid, grace)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    return list(stopping)
