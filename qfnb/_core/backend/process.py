"""Supervision of the daemon process: the start lock, spawning it detached, liveness, its log.

Linux/macOS only (``fcntl``, ``/proc`` where there is one). No HTTP here: whether the daemon
answers is :mod:`.control`'s business.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from qfnb._core.backend import DaemonError
from qfnb.protocol.platform.daemon import LOCK_FILE, LOG_FILE

__all__ = ["log_tail", "pid_alive", "spawn", "start_lock", "wait_gone"]

#: how often the waits here look again
TICK = 0.05


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie child of this process counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def lock_held(root: Path) -> bool:
    """Whether a daemon holds ``<root>/daemon.lock`` (its serving lock: a POSIX record lock, which
    this process's start lock, a ``flock``, never blocks)."""
    try:
        fd = os.open(root / LOCK_FILE, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # releases the record lock just taken
    return False


@contextlib.contextmanager
def start_lock(root: Path, timeout: float) -> Iterator[None]:
    """Hold ``<root>/daemon.lock``: two processes starting a daemon at once share one."""
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DaemonError(f"timed out waiting for another process starting the daemon in {root}") from None
                time.sleep(TICK)
        yield
    finally:
        os.close(fd)


def _package_root() -> str:
    """The directory holding the ``qfnb`` package this process runs (the daemon runs the same code)."""
    return str(Path(__file__).resolve().parents[3])  # qfnb/_core/backend/process.py


def spawn(root: Path, port: int, serve_args: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start ``qfnb serve --daemon`` for ``root``: own session, stdio to its log, same code and env."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH", "")) if p)
    log_fd = os.open(root / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "qfnb.cli", "serve", "--daemon", "--data-dir", str(root), "--port", str(port),
             *serve_args],
            stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd, start_new_session=True, cwd=str(root),
            env=env, close_fds=True)
    finally:
        os.close(log_fd)


def log_tail(root: Path, limit: int = 1500) -> str:
    """The end of the daemon's log (for an error message)."""
    try:
        return (root / LOG_FILE).read_text(encoding="utf-8", errors="replace")[-limit:]
    except OSError:
        return ""


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` s for ``pid`` to exit; whether it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(TICK)
    return False
