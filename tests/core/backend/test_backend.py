"""The default backend (the local daemon) as its client sees it: discovery through the runtime
file, control calls through the transport seam. A stand-in daemon (an ASGI app behind
``ASGITransport``, its runtime file naming this process) replaces the real one, which
``tests/local/test_daemon.py`` runs."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest

from qfnb._core import config as config_mod
from qfnb._core.backend import daemon
from qfnb._core.backend.daemon import LocalDaemon
from qfnb._core.transport.asgi import ASGITransport
from qfnb.protocol.platform.daemon import CONTROL_HEADER, CREDENTIALS_FILE, RUNTIME_FILE
from qfnb.protocol.version import __version__

TOKEN = "control-token-1"
KEYS = {"api_key": "ak-1", "secret_key": "sk-secret", "access_key": "iam-ak", "iam_secret_key": "iam-secret"}


class StandIn:
    """A daemon's control routes: health, status (with engines), a shutdown refused while a job runs."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None]] = []

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        token = headers.get(CONTROL_HEADER.lower())
        self.seen.append((scope["method"], scope["path"] + ("?" + scope["query_string"].decode()
                                                             if scope["query_string"] else ""), token))
        if scope["path"] == "/healthz":
            status, body = 200, {"ok": True}
        elif token != TOKEN:
            status, body = 403, {"error": "control token"}
        elif scope["path"] == "/qfnb/status":
            status, body = 200, {"pid": os.getpid(), "jobsRunning": [{"id": "job-1", "kind": "fine-tune"}],
                                 "engines": [{"model": "Tiny-Chat", "state": "ready", "slots": 2, "busy": "1"},
                                             {"state": "broken"}]}
        elif b"force=1" in scope["query_string"]:
            status, body = 200, {"stopped": True}
        else:
            status, body = 409, {"stopped": False, "jobsRunning": [{"id": "job-1"}]}
        payload = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "data"
    root.mkdir()
    (root / RUNTIME_FILE).write_text(json.dumps({"url": "http://daemon.test", "pid": os.getpid(),
                                                 "version": __version__, "started": 0.0, "control_token": TOKEN,
                                                 "default_models": {"chat": "Tiny-Chat"}}))
    (root / CREDENTIALS_FILE).write_text(json.dumps(KEYS))
    yield root
    daemon._known.pop(root.resolve(), None)
    (root / RUNTIME_FILE).unlink()  # it names this process: nothing may try to stop "it"


def test_a_running_daemon_is_found_and_controlled_through_the_transport_seam(data_dir: Path) -> None:
    app = StandIn()
    backend = LocalDaemon(data_dir, transport=ASGITransport(app))
    platform = backend.ensure()  # it answers and runs this version: used, nothing spawned
    assert (platform.base_url, platform.api_key, platform.iam_secret_key) == ("http://daemon.test", "ak-1",
                                                                               "iam-secret")
    assert dict(platform.default_models) == {"chat": "Tiny-Chat"} and "sk-secret" not in repr(platform)
    assert daemon.in_use(data_dir) and backend.ensure() is platform
    status = backend.status()
    assert status is not None and status["url"] == "http://daemon.test" and status["pid"] == os.getpid()
    engines = backend.engines()
    assert engines is not None and [(e.model, e.state, e.slots, e.busy) for e in engines] == [
        ("Tiny-Chat", "ready", 2, 1)]  # the malformed entry is dropped
    assert backend.stop() == {"running": True, "stopped": False, "jobsRunning": [{"id": "job-1"}]}
    assert not daemon.in_use(data_dir)
    assert app.seen == [("GET", "/healthz", None), ("GET", "/healthz", None), ("GET", "/qfnb/status", TOKEN),
                        ("GET", "/qfnb/status", TOKEN), ("POST", "/qfnb/shutdown", TOKEN)]


async def test_control_calls_work_from_inside_a_running_event_loop(data_dir: Path) -> None:
    # resolve_config may run inside a coroutine: the control call must not need this loop
    status = LocalDaemon(data_dir, transport=ASGITransport(StandIn())).status()
    assert status is not None and status["jobsRunning"][0]["id"] == "job-1"


def test_no_daemon_and_a_dead_one_read_as_none(data_dir: Path, tmp_path: Path) -> None:
    empty = LocalDaemon(tmp_path / "none", transport=ASGITransport(StandIn()))
    assert empty.status() is None and empty.engines() is None
    assert empty.stop() == {"stopped": False, "running": False}
    record = json.loads((data_dir / RUNTIME_FILE).read_text())
    (data_dir / RUNTIME_FILE).write_text(json.dumps({**record, "url": "http://127.0.0.1:9"}))
    unreachable = LocalDaemon(data_dir)  # the default transport: a refused connection is "not running"
    assert unreachable.running() is None and unreachable.engines() is None


def test_set_default_backend_is_the_one_hook(data_dir: Path) -> None:
    app = StandIn()
    config_mod.set_default_backend(LocalDaemon(data_dir, transport=ASGITransport(app)).ensure)
    try:
        cfg = config_mod.resolve_config(config_mod.Config.from_env({}))
    finally:
        config_mod.set_default_backend(None)
    assert (cfg.base_url, cfg.ak, cfg.secret_key, cfg.embedded) == ("http://daemon.test", "ak-1", "iam-secret", True)
    assert dict(cfg.default_models) == {"chat": "Tiny-Chat"} and app.seen == [("GET", "/healthz", None)]


_HOLDER = """
import fcntl, json, os, sys, time
root, seconds, runtime = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"
fd = os.open(os.path.join(root, "daemon.lock"), os.O_RDWR | os.O_CREAT, 0o600)
fcntl.lockf(fd, fcntl.LOCK_EX)
if runtime:
    with open(os.path.join(root, "runtime.json"), "w") as fh:
        json.dump({"url": "http://daemon.test", "pid": os.getpid(), "version": sys.argv[4], "started": 0.0,
                   "control_token": "control-token-1", "default_models": {}}, fh)
print("locked", flush=True)
time.sleep(seconds)
"""


@pytest.mark.parametrize("other", ["dying", "busy"])
def test_a_daemon_that_finds_another_holding_the_data_dir_waits_for_it(
        other: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A heal under load started a daemon while the killed one had not exited yet (or while a busy one
    missed the health check): the new one found the data dir held and exited with code 3, and the
    caller failed. Now the start waits: a dying holder is waited out and a daemon started again, a
    busy one is used once it answers."""
    import subprocess
    import sys

    root = tmp_path / "data"
    root.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(root), "0.8" if other == "dying" else "30",
                               "1" if other == "busy" else "0", __version__], stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
    spawned: list[subprocess.Popen[bytes]] = []

    def spawn(where: Path, port: int, args: Any) -> subprocess.Popen[bytes]:
        # a daemon refuses a held data dir (exit code 3); else it serves: its runtime file names it
        code = ("import fcntl, json, os, sys, time\n"
                f"fd = os.open({str(root / 'daemon.lock')!r}, os.O_RDWR)\n"
                "try:\n    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept OSError:\n    sys.exit(3)\n"
                f"json.dump({{'url': 'http://daemon.test', 'pid': os.getpid(), 'version': {__version__!r}, "
                "'started': 0.0, 'control_token': 'control-token-1', 'default_models': {}}, "
                f"open({str(root / RUNTIME_FILE)!r}, 'w'))\ntime.sleep(30)\n")
        spawned.append(subprocess.Popen([sys.executable, "-c", code]))
        return spawned[-1]

    monkeypatch.setattr(daemon, "spawn", spawn)
    try:
        info = LocalDaemon(root, transport=ASGITransport(StandIn()), timeout=30)._start(None)
        if other == "dying":
            assert [p.returncode for p in spawned[:-1]] == [3] and info.pid == spawned[-1].pid
        else:
            assert [p.poll() for p in spawned] == [3] and info.pid == holder.pid  # the busy one, now answering
    finally:
        for proc in [holder, *spawned]:
            proc.kill()
            proc.wait()
