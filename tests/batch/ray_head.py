"""A one-node Ray head owned by a test or a bench: 127.0.0.1, free ports, its own temp dir; stopped
by killing the process group it started (never ``ray stop``, which would stop other users' heads).
:func:`ray_node` joins one more node to such a head (a second raylet on this machine, with its own
ports and temp dir), standing for a second machine.

Every port the head opens is a free one: with Ray's defaults a second head on the machine finds its
dashboard agent's port (52365) taken, and its Jobs API answers "No available agent" for good."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: heads started before giving up: Ray's own start gives its raylet 30 s to register, which a machine
#: under heavy load can miss (the head then exits "timed out during startup")
TRIES = 3
#: each running head's GCS port, by its target (what a node joining it needs)
_GCS: dict[str, int] = {}


@contextlib.contextmanager
def ray_head(temp: Path, *, cpus: int = 2, timeout: float = 120.0) -> Iterator[str]:
    """A head; yields its target ``ray://127.0.0.1:<dashboard port>`` once its Jobs API answers and its
    raylet is up (a head that fails to start is started again, :data:`TRIES` times in all)."""
    for attempt in range(1, TRIES + 1):
        folder = temp / f"h{attempt}"  # short: Ray's socket paths under it must fit in 107 bytes
        folder.mkdir(parents=True)
        gcs = free_port()
        proc, dashboard = _start(folder, cpus, gcs)
        try:
            if _wait(proc, folder, dashboard, timeout, last=attempt == TRIES):
                target = f"ray://127.0.0.1:{dashboard}"
                _GCS[target] = gcs
                try:
                    yield target
                finally:
                    _GCS.pop(target, None)
                return
        finally:
            _stop(proc)


@contextlib.contextmanager
def ray_node(temp: Path, target: str, *, cpus: int = 1, timeout: float = 120.0) -> Iterator[str]:
    """One more node joined to the head at ``target`` (started by :func:`ray_head`); yields its node id
    once the head counts it alive, stops it (the process group it started) on the way out."""
    from ray.util.state import list_nodes

    dashboard = target.replace("ray://", "http://")
    before = {n.node_id for n in list_nodes(address=dashboard)}
    for attempt in range(1, TRIES + 1):
        folder = temp / f"n{attempt}"
        folder.mkdir(parents=True)
        proc = _popen(folder, "node.log", ["--address", f"127.0.0.1:{_GCS[target]}", "--num-cpus", str(cpus),
                                           *_ports("dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                   "runtime-env-agent-port", "metrics-export-port",
                                                   "node-manager-port", "object-manager-port")])
        try:
            deadline = time.monotonic() + timeout
            while proc.poll() is None and time.monotonic() < deadline:
                alive = {n.node_id for n in list_nodes(address=dashboard, filters=[("state", "=", "ALIVE")])}
                if alive - before:
                    yield (alive - before).pop()
                    return
                time.sleep(1)
            if attempt == TRIES:
                raise RuntimeError(f"the Ray node did not join: {(folder / 'node.log').read_text()[-2000:]}")
        finally:
            _stop(proc)


def _ports(*names: str) -> list[str]:
    return [f"--{name}={free_port()}" for name in names]


def _popen(folder: Path, log_name: str, args: list[str]) -> subprocess.Popen[bytes]:
    """``ray start --block ARGS`` in a session of its own, its output in ``folder/log_name``."""
    ray_bin = str(Path(sys.executable).with_name("ray"))
    with open(folder / log_name, "wb") as log:
        return subprocess.Popen([ray_bin, "start", "--block", *args, "--temp-dir", str(folder / "r"),
                                 "--disable-usage-stats"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=_head_env(folder))


def _start(folder: Path, cpus: int, gcs: int) -> tuple[subprocess.Popen[bytes], int]:
    dashboard = free_port()
    ports = _ports("dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
                   "metrics-export-port", "ray-client-server-port", "node-manager-port", "object-manager-port")
    proc = _popen(folder, "head.log", ["--head", f"--port={gcs}", *ports, "--dashboard-host", "127.0.0.1",
                                       "--dashboard-port", str(dashboard), "--num-cpus", str(cpus),
                                       "--include-dashboard", "true"])
    return proc, dashboard


def _head_env(folder: Path) -> dict[str, str]:
    """The head's environment: this one, with jsonschema's optional IRI checker (``rfc3987_syntax``)
    made unimportable. Importing it builds an Earley parser (12 s of a busy machine's wall clock),
    and every Ray process imports jsonschema: enough to push the dashboard agent past the 15 s the
    raylet waits for it, so the head exits "timed out during startup" (Ray issue #65983)."""
    stub = folder / "stubs" / "rfc3987_syntax"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('raise ImportError("left out of the test head: see tests/batch/ray_head.py")\n')
    path = [str(folder / "stubs"), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


def _wait(proc: subprocess.Popen[bytes], folder: Path, dashboard: int, timeout: float, *, last: bool) -> bool:
    """True once the head answers; False when it died starting (RuntimeError instead on the last try)."""
    from ray.job_submission import JobSubmissionClient

    deadline = time.monotonic() + timeout
    while True:
        try:
            JobSubmissionClient(f"http://127.0.0.1:{dashboard}").list_jobs()
            if b"Ray runtime started" not in (folder / "head.log").read_bytes():  # the raylet is up too
                raise RuntimeError("the head is still starting")
            return True
        except Exception as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                if not last:
                    return False
                head_log = (folder / "head.log").read_text()[-2000:]
                raise RuntimeError(f"the Ray head did not start: {head_log}") from exc
            time.sleep(1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    _kill_session(proc.pid)


def _kill_session(sid: int) -> None:
    """Kill what is left of the head's session (Ray starts its workers in process groups of their own,
    in the session the head was started in): only processes this head started."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid:  # the session id, after state, ppid and pgrp
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(stat.parent.name), signal.SIGKILL)
