"""The default backend: the data dir's local platform daemon (the client side).

With no Qianfan credentials configured, qfnb talks to ``qfnb serve --daemon``: one detached
background process per data dir, shared by every kernel, script and ``qfnb`` command, and
outliving them all (like Ollama's server or Jupyter's runtime files). :class:`LocalDaemon` is
that :class:`~qfnb._core.backend.Backend`; the functions below are its shells for one data dir
(``$QFNB_DATA_DIR`` or ``~/.qfnb`` by default). Nothing heavy (torch, llama.cpp) is loaded into
the caller, and the caller's environment is not changed.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qfnb._core.backend import DaemonError
from qfnb._core.backend.control import Control
from qfnb._core.backend.discovery import LocalPlatform, known, known_lock, load_platform, read_runtime, root
from qfnb._core.backend.process import TICK, lock_held, log_tail, pid_alive, spawn, start_lock, wait_gone
from qfnb._core.transport import Transport
from qfnb.protocol.platform.daemon import LOG_FILE, SERVED_ELSEWHERE, DaemonStatus, EngineState, RuntimeInfo
from qfnb.protocol.version import __version__

__all__ = ["START_TIMEOUT", "DaemonError", "EngineState", "LocalDaemon", "LocalPlatform", "daemon_status",
           "engine_states", "ensure_daemon", "in_use", "read_runtime", "stop_daemon"]

logger = logging.getLogger("qfnb")

START_TIMEOUT = 120.0
#: the daemons this process uses, and whether a pid runs (names kept for callers and tests)
_known = known
_pid_alive = pid_alive
#: the ``serve_args`` a data dir's daemon was asked for in this process (a daemon started again by
#: :func:`qfnb._core.backend.heal.revive` gets them too)
serve_args_of: dict[Path, tuple[str, ...]] = {}


class LocalDaemon:
    """The local platform daemon of one data dir: found, or started first (:meth:`ensure`).

    ``transport`` sends its control calls (default: httpx's); ``serve_args`` are extra
    ``qfnb serve`` options for a daemon started here.
    """

    def __init__(self, data_dir: Path | str | None = None, *, transport: Transport | None = None,
                 serve_args: Sequence[str] = (), timeout: float = START_TIMEOUT) -> None:
        self.root = root(data_dir)
        self.transport = transport
        self.serve_args = tuple(serve_args)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"LocalDaemon({str(self.root)!r})"

    def control(self, info: RuntimeInfo) -> Control:
        return Control(info, self.transport)

    def running(self) -> RuntimeInfo | None:
        """The runtime file's daemon if its process is alive and it answers."""
        info = read_runtime(self.root)
        if info is None or not pid_alive(info.pid):
            return None
        return info if self.control(info).answers() else None

    def ensure(self) -> LocalPlatform:
        """The daemon, started if none runs.

        A runtime file whose process is gone, or that does not answer, is replaced. A daemon of
        another qfnb version is restarted only when nothing runs on it; otherwise it is used and
        a warning says so.
        """
        found = known.get(self.root)
        if found is not None and pid_alive(found.pid):
            return found
        with known_lock, start_lock(self.root, self.timeout):
            info = self.running()
            if info is not None and info.version != __version__:
                info = self._replace_other_version(info, __version__)
            if info is None:
                info = self._start(read_runtime(self.root))
            platform = load_platform(self.root, info)
            known[self.root] = platform
            return platform

    def _start(self, previous: RuntimeInfo | None) -> RuntimeInfo:
        """Start a daemon and wait until it answers. One that finds another daemon holding the data
        dir (:data:`SERVED_ELSEWHERE`: a dying one that has not exited yet, or a busy one that did not
        answer the health check in time) is not an error: that one is used once it answers, or a
        daemon is started again once it is gone."""
        # reuse the last port so clients that still hold the old URL reach the new daemon
        port = int(previous.url.rsplit(":", 1)[1]) if previous is not None else 0
        deadline = time.monotonic() + self.timeout
        proc = spawn(self.root, port, self.serve_args)
        while time.monotonic() < deadline:
            info = read_runtime(self.root)
            if info is not None and info.pid == proc.pid and self.control(info).answers():
                logger.info("qfnb: started the local platform daemon (pid %d) at %s; logs in %s",
                            info.pid, info.url, self.root / LOG_FILE)
                return info
            if proc.poll() is not None:
                if proc.returncode != SERVED_ELSEWHERE:
                    raise DaemonError(f"the local platform daemon exited with code {proc.returncode} "
                                      f"(log {self.root / LOG_FILE}):\n{log_tail(self.root)}")
                other = self._other(deadline)
                if other is not None:
                    return other
                proc = spawn(self.root, port, self.serve_args)  # the other one is gone: start one again
            time.sleep(TICK)
        raise DaemonError(f"the local platform daemon did not answer within {self.timeout:.0f} s "
                          f"(log {self.root / LOG_FILE})")

    def _other(self, deadline: float) -> RuntimeInfo | None:
        """The daemon that holds the data dir once it answers; None once none holds it."""
        while time.monotonic() < deadline:
            info = self.running()
            if info is not None:
                logger.info("qfnb: the local platform daemon (pid %d) at %s answers", info.pid, info.url)
                return info
            if not lock_held(self.root):
                return None
            time.sleep(TICK)
        return None

    def _replace_other_version(self, info: RuntimeInfo, version: str) -> RuntimeInfo | None:
        code, body = self.control(info).shutdown()
        if code == 409:
            jobs = ", ".join(str(j.get("id")) for j in body.get("jobsRunning", []) if isinstance(j, dict))
            logger.warning("qfnb: the local platform daemon runs qfnb %s (this is %s) and has work running (%s); "
                           "using it until that finishes (`qfnb stop` restarts it)", info.version, version, jobs)
            return info
        wait_gone(info.pid, 30.0)
        return None

    def status(self) -> dict[str, Any] | None:
        """What the running daemon reports, with its ``url`` (None when none runs)."""
        info = self.running()
        if info is None:
            return None
        return {"url": info.url, **self.control(info).status()}

    def engines(self, timeout: float = 0.5) -> list[EngineState] | None:
        """The daemon's engines (loading, ready, busy); None when unknown.

        Cheap and safe to call from a UI loop: one short request, no health check, and it never
        raises (no daemon, a slow one, an older one without ``engines``: None)."""
        info = read_runtime(self.root)
        return self.control(info).engines(timeout) if info is not None else None

    def stop(self, *, force: bool = False, timeout: float = 30.0) -> dict[str, Any]:
        """Stop the daemon. Refuses (``running: True``) while jobs run unless ``force``."""
        info = read_runtime(self.root)
        known.pop(self.root, None)
        if info is None or not pid_alive(info.pid):
            return {"stopped": False, "running": False}
        try:
            code, body = self.control(info).shutdown(force=force)
        except ConnectionError as exc:  # it does not answer (busy, hung): forced, it is stopped by a signal
            if not force:
                raise DaemonError(f"the daemon (pid {info.pid}) did not answer its shutdown request ({exc}); "
                                  "`qfnb stop --force` stops it with a signal") from None
            logger.warning("qfnb: the daemon (pid %d) did not answer its shutdown request (%s); sending it SIGTERM",
                           info.pid, exc)
            os.kill(info.pid, signal.SIGTERM)
            code, body = 200, {"stopped": True, "signalled": True}
        if code == 409:
            return {"running": True, **body}
        if not wait_gone(info.pid, timeout):
            raise DaemonError(f"the daemon (pid {info.pid}) did not exit within {timeout:.0f} s")
        return {"running": False, **body}


def ensure_daemon(data_dir: Path | str | None = None, *, timeout: float = START_TIMEOUT,
                  serve_args: Sequence[str] = ()) -> LocalPlatform:
    """The daemon of ``data_dir`` (``$QFNB_DATA_DIR`` or ``~/.qfnb``), started if none runs
    (:meth:`LocalDaemon.ensure`)."""
    if serve_args:
        serve_args_of[root(data_dir)] = tuple(serve_args)
    return LocalDaemon(data_dir, serve_args=serve_args, timeout=timeout).ensure()


def daemon_status(data_dir: Path | str | None = None) -> DaemonStatus | None:
    """What the running daemon of ``data_dir`` reports (None when none runs)."""
    raw = LocalDaemon(data_dir).status()  # with the ``url`` of the runtime file it read
    return None if raw is None else DaemonStatus.from_dict(raw, url=str(raw["url"]))


def engine_states(data_dir: Path | str | None = None, *, timeout: float = 0.5) -> list[EngineState] | None:
    """The daemon's engines from its status route; None when unknown (:meth:`LocalDaemon.engines`)."""
    return LocalDaemon(data_dir).engines(timeout)


def stop_daemon(data_dir: Path | str | None = None, *, force: bool = False, timeout: float = 30.0) -> dict[str, Any]:
    """Stop the daemon of ``data_dir``. Refuses (``running: True``) while jobs run unless ``force``."""
    return LocalDaemon(data_dir).stop(force=force, timeout=timeout)


def in_use(data_dir: Path | str | None = None) -> bool:
    """Whether this process talks to ``data_dir``'s daemon (it found or started it)."""
    return root(data_dir) in known


if TYPE_CHECKING:  # mypy checks that LocalPlatform is an Access
    from qfnb._core.backend import Access

    _conforms: Access = LocalDaemon().ensure()
