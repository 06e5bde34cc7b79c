"""Issue 92 §3: ``qfnb stop`` against a daemon that does not answer (busy scoring, hung) never prints a
traceback. ``--force`` stops it with a signal and exits 0; without it, one line says so and exits 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

#: a stand-in daemon: it accepts connections and never answers, until SIGTERM ends it
SILENT = """
import signal, socket, sys, time
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(16)
print(server.getsockname()[1], flush=True)
held = []
server.settimeout(0.1)
while True:
    try:
        held.append(server.accept()[0])
    except socket.timeout:
        pass
"""


@pytest.fixture()
def silent_daemon(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    proc = subprocess.Popen([sys.executable, "-c", SILENT], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        data = tmp_path / "data"
        data.mkdir()
        (data / "runtime.json").write_text(json.dumps({"url": f"http://127.0.0.1:{port}", "pid": proc.pid,
                                                       "version": "0", "started": time.time(),
                                                       "control_token": "t"}))
        yield data, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _stop(data: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "qfnb", "stop", "--data-dir", str(data), *extra],
                          capture_output=True, text=True, timeout=120, env=env, check=False)


def test_stop_without_force_says_it_in_one_line(silent_daemon: tuple[Path, subprocess.Popen[str]]) -> None:
    data, proc = silent_daemon
    done = _stop(data)
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr and "qfnb: could not stop the local platform:" in done.stderr, done.stderr
    assert "qfnb stop --force" in done.stderr
    assert proc.poll() is None  # not forced: left running


def test_stop_force_signals_a_daemon_that_does_not_answer(silent_daemon: tuple[Path, subprocess.Popen[str]]) -> None:
    data, proc = silent_daemon
    done = _stop(data, "--force")
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done
    assert proc.wait(10) is not None
