"""Engines a killed platform process left running: found by their pid files and stopped.

Engines die with their platform (``spawn.popen`` sets ``PR_SET_PDEATHSIG``); these checks are for
what an older platform or a failed start left behind. A live platform's engine is never touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

log = logging.getLogger("qfnb.local.engines")


def orphaned_engine(pid: int) -> bool:
    """Whether ``pid`` is a ``llama-server`` whose platform process is gone (its parent is no
    longer a qfnb process): one a live platform runs is never touched."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return False
    if not argv0.endswith(b"llama-server"):
        return False
    try:
        return ppid <= 1 or b"qfnb" not in Path(f"/proc/{ppid}/cmdline").read_bytes()
    except OSError:
        return True


def reap_leftovers(log_dir: Path) -> None:
    """Stop every engine a previous platform process of this data dir left running (its pid
    files in ``log_dir`` name a live ``llama-server``)."""
    for pid_file in sorted(log_dir.glob("engine-*.pid")) if log_dir.is_dir() else ():
        pid = 0
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text())
        if pid and orphaned_engine(pid):
            log.warning("stopping an engine (pid %d) left running by a previous platform process", pid)
            with contextlib.suppress(OSError):
                os.kill(pid, 15)
        elif pid and Path(f"/proc/{pid}").exists():
            continue  # a live platform's engine
        pid_file.unlink(missing_ok=True)
