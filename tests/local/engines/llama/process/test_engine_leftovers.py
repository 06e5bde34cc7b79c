"""Engines outlive nothing: a leftover that ignores SIGTERM is killed by the next platform, and the
death signal an engine is started with outlives the thread that asked for it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from qfnb.local.engines.llama.process import spawn
from qfnb.local.engines.llama.process.leftovers import orphaned_engine, reap_leftovers, started_at

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and PR_SET_PDEATHSIG are Linux's")


def _orphan(tmp_path: Path, ignore_term: bool) -> int:
    """A process named ``llama-server`` whose parent has exited (it is nobody's child here), that
    ignores SIGTERM when asked: an ignored signal stays ignored across ``exec``."""
    trap = "trap '' TERM; " if ignore_term else ""
    out = subprocess.run(["bash", "-c", f"({trap}exec -a {tmp_path}/bin/llama-server sleep 60) "
                          ">/dev/null 2>&1 </dev/null & echo $!"], capture_output=True, text=True, check=True)
    pid = int(out.stdout)
    deadline = time.monotonic() + 5
    while not orphaned_engine(pid) and time.monotonic() < deadline:  # the exec has happened
        time.sleep(0.02)
    assert orphaned_engine(pid), f"pid {pid} is not an orphaned llama-server"
    return pid


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while started_at(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    return started_at(pid) is None


def test_a_leftover_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    stubborn, polite = _orphan(tmp_path, ignore_term=True), _orphan(tmp_path, ignore_term=False)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "engine-a.pid").write_text(str(stubborn))
    (logs / "engine-b.pid").write_text(str(polite))
    try:
        begun = time.monotonic()
        assert sorted(reap_leftovers(logs, grace=0.5)) == sorted([stubborn, polite])
        assert time.monotonic() - begun >= 0.5  # the stubborn one got its grace, then SIGKILL
        assert _gone(stubborn, 5) and _gone(polite, 5)
        assert not list(logs.glob("*.pid"))
    finally:
        for pid in (stubborn, polite):
            if started_at(pid) is not None:
                os.kill(pid, signal.SIGKILL)


def test_a_live_platforms_engine_and_a_reused_pid_are_left_alone(tmp_path: Path) -> None:
    # our own child named llama-server: its parent (this test) is alive, but counts as a platform
    # only where its command line says qfnb; only an engine whose parent is no platform is stopped
    child = subprocess.Popen(["bash", "-c", f"trap '' TERM; exec -a {tmp_path}/llama-server sleep 60"])
    logs = tmp_path / "logs"
    logs.mkdir()
    try:
        deadline = time.monotonic() + 5
        # until bash has exec'd: its own command line names llama-server too (in the script it runs), and an
        # orphan test before the exec and a reap after it disagreed on a loaded machine
        while not Path(f"/proc/{child.pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"llama-server") \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        (logs / "engine-a.pid").write_text(str(child.pid))
        (logs / "engine-b.pid").write_text(str(os.getpid()))  # a pid file naming some other live process
        orphan = orphaned_engine(child.pid)
        assert reap_leftovers(logs, grace=0.2) == ([child.pid] if orphan else [])
        assert started_at(os.getpid()) is not None
        if orphan:  # it ignored SIGTERM: killed after the grace (the signal lands a moment after kill returns)
            assert child.wait(10) == -signal.SIGKILL
        else:  # a live platform's engine: not signalled at all
            assert child.poll() is None
        assert (logs / "engine-b.pid").exists()  # a live process that is no orphaned engine: left as it is
    finally:
        child.kill()
        child.wait()


def test_the_death_signal_outlives_the_thread_that_started_the_engine(tmp_path: Path) -> None:
    """A platform process starts an engine from a short-lived thread (as ``asyncio.to_thread``
    does); that thread ends; the engine lives on, and dies when the platform process is killed."""
    code = textwrap.dedent("""
        import sys, threading, time
        from qfnb.local.engines.llama.process import spawn
        procs = []
        t = threading.Thread(target=lambda: procs.append(spawn.popen(["sleep", "60"])))
        t.start(); t.join()
        print(procs[0].pid, flush=True)
        time.sleep(60)
    """)
    platform = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[5])})
    assert platform.stdout is not None
    engine = int(platform.stdout.readline())
    try:
        time.sleep(0.3)  # the starting thread is gone by now
        assert started_at(engine) is not None  # still running: the signal was not tied to that thread
        platform.kill()
        platform.wait()
        assert _gone(engine, 5)  # PR_SET_PDEATHSIG fired when the platform died
    finally:
        if started_at(engine) is not None:
            os.kill(engine, signal.SIGKILL)
        platform.kill()


def test_the_spawner_is_one_long_lived_thread() -> None:
    seen: list[str] = []
    for _ in range(2):
        proc = spawn.popen(["true"])
        proc.wait()
    spawn.SPAWNER.submit(lambda: seen.append(threading.current_thread().name)).result()
    assert seen[0].startswith("qfnb-engine-spawn")
    assert len([t for t in threading.enumerate() if t.name.startswith("qfnb-engine-spawn")]) == 1
