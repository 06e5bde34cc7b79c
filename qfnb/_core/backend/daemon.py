"""Find, start and stop the local platform daemon of a data dir (the client side).

With no Qianfan credentials configured, qfnb talks to ``qfnb serve --daemon``: one detached
background process per data dir, shared by every kernel, script and ``qfnb`` command, and
outliving them all (like Ollama's server or Jupyter's runtime files). This module never
imports :mod:`qfnb.local`: nothing heavy (torch, llama.cpp) is loaded into the caller, and
the caller's environment is not changed. The daemon is found through its runtime file; a
file lock makes two processes starting at once share one daemon.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qfnb.protocol.daemon import (
    CONTROL_HEADER,
    CREDENTIALS_FILE,
    LOCK_FILE,
    LOG_FILE,
    RUNTIME_FILE,
    SHUTDOWN_ROUTE,
    STATUS_ROUTE,
    RuntimeInfo,
    default_data_dir,
)

logger = logging.getLogger("qfnb")

START_TIMEOUT = 120.0


class DaemonError(RuntimeError):
    """The local platform daemon could not be started, reached or stopped."""


@dataclass(frozen=True)
class LocalPlatform:
    """A running daemon: where it is and how to authenticate to it."""

    base_url: str
    api_key: str
    secret_key: str
    access_key: str
    iam_secret_key: str
    data_dir: Path
    pid: int
    version: str
    default_models: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"LocalPlatform(base_url={self.base_url!r}, pid={self.pid}, data_dir={str(self.data_dir)!r}, "
                "secrets=***)")


_known: dict[Path, LocalPlatform] = {}
_known_lock = threading.Lock()


def _root(data_dir: Path | str | None) -> Path:
    return (Path(data_dir) if data_dir is not None else default_data_dir()).expanduser().resolve()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of this process has "exited" too
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def read_runtime(data_dir: Path | str | None = None) -> RuntimeInfo | None:
    """The runtime file of ``data_dir``'s daemon, or None when there is none (or it is unreadable)."""
    try:
        return RuntimeInfo.from_dict(json.loads((_root(data_dir) / RUNTIME_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def _request(method: str, info: RuntimeInfo, path: str, *, timeout: float = 5.0,
             params: dict[str, str] | None = None) -> Any:
    import httpx

    resp = httpx.request(method, info.url + path, headers={CONTROL_HEADER: info.control_token},
                         params=params, timeout=timeout)
    return resp


def _answers(info: RuntimeInfo) -> bool:
    import httpx

    try:
        return httpx.get(info.url + "/healthz", timeout=3.0).status_code == 200
    except httpx.HTTPError:
        return False


def _running(info: RuntimeInfo | None) -> RuntimeInfo | None:
    """``info`` if its daemon is alive and answers."""
    if info is None or not _pid_alive(info.pid):
        return None
    return info if _answers(info) else None


@contextlib.contextmanager
def _start_lock(root: Path, timeout: float) -> Iterator[None]:
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
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _platform(root: Path, info: RuntimeInfo) -> LocalPlatform:
    try:
        creds = json.loads((root / CREDENTIALS_FILE).read_text(encoding="utf-8"))
        keys = {k: str(creds[k]) for k in ("api_key", "secret_key", "access_key", "iam_secret_key")}
    except (OSError, ValueError, KeyError) as exc:
        raise DaemonError(f"the daemon's credentials file {root / CREDENTIALS_FILE} is unreadable: {exc!r}") from None
    return LocalPlatform(base_url=info.url, data_dir=root, pid=info.pid, version=info.version,
                         default_models=dict(info.default_models), **keys)


def _package_root() -> str:
    """The directory holding the ``qfnb`` package this process runs (the daemon runs the same code)."""
    return str(Path(__file__).resolve().parents[3])  # qfnb/_core/backend/daemon.py


def _spawn(root: Path, port: int, serve_args: Sequence[str]) -> subprocess.Popen[bytes]:
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


def _log_tail(root: Path, limit: int = 1500) -> str:
    try:
        return (root / LOG_FILE).read_text(encoding="utf-8", errors="replace")[-limit:]
    except OSError:
        return ""


def _start(root: Path, previous: RuntimeInfo | None, serve_args: Sequence[str], timeout: float) -> RuntimeInfo:
    # reuse the last port so clients that still hold the old URL reach the new daemon
    port = int(previous.url.rsplit(":", 1)[1]) if previous is not None else 0
    proc = _spawn(root, port, serve_args)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = read_runtime(root)
        if info is not None and info.pid == proc.pid and _answers(info):
            logger.info("qfnb: started the local platform daemon (pid %d) at %s; logs in %s",
                        info.pid, info.url, root / LOG_FILE)
            return info
        if proc.poll() is not None:
            raise DaemonError(f"the local platform daemon exited with code {proc.returncode} "
                              f"(log {root / LOG_FILE}):\n{_log_tail(root)}")
        time.sleep(0.05)
    raise DaemonError(f"the local platform daemon did not answer within {timeout:.0f} s (log {root / LOG_FILE})")


def ensure_daemon(data_dir: Path | str | None = None, *, timeout: float = START_TIMEOUT,
                  serve_args: Sequence[str] = ()) -> LocalPlatform:
    """The daemon of ``data_dir`` (``$QFNB_DATA_DIR`` or ``~/.qfnb``), started if none runs.

    A runtime file whose process is gone, or that does not answer, is replaced. A daemon of
    another qfnb version is restarted only when nothing runs on it; otherwise it is used and a
    warning says so. ``serve_args`` are extra ``qfnb serve`` options for a daemon started here.
    """
    from qfnb.protocol.version import __version__

    root = _root(data_dir)
    known = _known.get(root)
    if known is not None and _pid_alive(known.pid):
        return known
    with _known_lock, _start_lock(root, timeout):
        info = _running(read_runtime(root))
        if info is not None and info.version != __version__:
            info = _replace_other_version(root, info, __version__)
        if info is None:
            info = _start(root, read_runtime(root), serve_args, timeout)
        platform = _platform(root, info)
        _known[root] = platform
        return platform


def _replace_other_version(root: Path, info: RuntimeInfo, version: str) -> RuntimeInfo | None:
    resp = _request("POST", info, SHUTDOWN_ROUTE)
    if resp.status_code == 409:
        jobs = ", ".join(j["id"] for j in resp.json().get("jobsRunning", []))
        logger.warning("qfnb: the local platform daemon runs qfnb %s (this is %s) and has work running (%s); "
                       "using it until that finishes (`qfnb stop` restarts it)", info.version, version, jobs)
        return info
    _wait_gone(info, 30.0)
    return None


def _wait_gone(info: RuntimeInfo, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(info.pid):
            return True
        time.sleep(0.05)
    return False


def daemon_status(data_dir: Path | str | None = None) -> dict[str, Any] | None:
    """What the running daemon of ``data_dir`` reports (None when none runs)."""
    info = _running(read_runtime(data_dir))
    if info is None:
        return None
    status: dict[str, Any] = _request("GET", info, STATUS_ROUTE).json()
    return {"url": info.url, **status}


@dataclass(frozen=True)
class EngineState:
    """One engine of the daemon's status (``GET /qfnb/status`` → ``engines``)."""

    model: str
    endpoint: str
    state: str  # "starting" | "ready" | "stopped" | "failed"
    since: float | None = None  # Unix time the state began
    slots: int = 0
    busy: int = 0
    queued: int = 0

    @classmethod
    def from_dict(cls, raw: Any) -> EngineState | None:
        """Parse one entry; None for a malformed one (an older or newer daemon)."""
        if not isinstance(raw, dict) or not raw.get("model") or not raw.get("state"):
            return None

        def num(key: str) -> int:
            try:
                return int(raw.get(key) or 0)
            except (TypeError, ValueError):
                return 0

        try:
            since = float(raw["since"]) if raw.get("since") is not None else None
        except (TypeError, ValueError):
            since = None
        return cls(model=str(raw["model"]), endpoint=str(raw.get("endpoint") or ""), state=str(raw["state"]),
                   since=since, slots=num("slots"), busy=num("busy"), queued=num("queued"))


def in_use(data_dir: Path | str | None = None) -> bool:
    """Whether this process talks to ``data_dir``'s daemon (it found or started it)."""
    return _root(data_dir) in _known


def engine_states(data_dir: Path | str | None = None, *, timeout: float = 0.5) -> list[EngineState] | None:
    """The daemon's engines (loading, ready, busy) from its status route; None when unknown.

    Cheap and safe to call from a UI loop: one short request, no health check, and it never
    raises (no daemon, a slow one, an older one without ``engines``: None)."""
    import httpx

    info = read_runtime(data_dir)
    if info is None:
        return None
    try:
        resp = httpx.get(info.url + STATUS_ROUTE, headers={CONTROL_HEADER: info.control_token}, timeout=timeout)
        engines = resp.json().get("engines") if resp.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    if not isinstance(engines, list):
        return None
    return [e for e in map(EngineState.from_dict, engines) if e is not None]


def stop_daemon(data_dir: Path | str | None = None, *, force: bool = False, timeout: float = 30.0) -> dict[str, Any]:
    """Stop the daemon of ``data_dir``. Refuses (``stopped: False``) while jobs run unless ``force``."""
    root = _root(data_dir)
    info = read_runtime(root)
    _known.pop(root, None)
    if info is None or not _pid_alive(info.pid):
        return {"stopped": False, "running": False}
    resp = _request("POST", info, SHUTDOWN_ROUTE, params={"force": "1"} if force else None)
    body: dict[str, Any] = resp.json()
    if resp.status_code == 409:
        return {"running": True, **body}
    if not _wait_gone(info, timeout):
        raise DaemonError(f"the daemon (pid {info.pid}) did not exit within {timeout:.0f} s")
    return {"running": False, **body}
