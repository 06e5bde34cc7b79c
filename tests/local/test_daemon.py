"""The local platform daemon: one per data dir, shared, outliving its callers.

Daemons here run the real ``qfnb serve --daemon`` in a detached process, with the engine and
training-worker test doubles, on a temporary data dir; each test stops what it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from platform_helpers import Signer

from qfnb._core.backend import daemon
from qfnb.protocol.platform.daemon import RUNTIME_FILE
from qfnb.protocol.platform.traces import TRACES_FILE

REPO = Path(__file__).resolve().parents[2]
FAKE_WORKER = Path(__file__).with_name("fake_worker.py")
DOUBLES = ["--registry", "tests.local.platform_doubles:FakeRegistry",
           "--worker-command", f"{sys.executable} {FAKE_WORKER}"]


@pytest.fixture
def data_dir(daemon_data_dir: Path) -> Path:
    return daemon_data_dir


def _script(body: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(body)]


def test_start_status_stop_and_private_runtime_file(data_dir: Path) -> None:
    platform = daemon.ensure_daemon(data_dir, serve_args=DOUBLES)
    runtime = data_dir / RUNTIME_FILE
    assert runtime.stat().st_mode & 0o777 == 0o600
    assert json.loads(runtime.read_text())["pid"] == platform.pid != os.getpid()
    assert platform.secret_key not in repr(platform) and platform.iam_secret_key not in repr(platform)
    status = daemon.daemon_status(data_dir)
    assert status is not None and status.pid == platform.pid and status.jobs_running == ()
    assert status.url == platform.base_url and status.data_dir == str(data_dir.resolve())
    _an_idle_connection_outlives_a_client_pool_s_keep_alive(platform.base_url)
    # the control routes need the runtime file's token
    assert httpx.get(platform.base_url + "/qfnb/status").status_code == 403
    assert httpx.post(platform.base_url + "/qfnb/shutdown").status_code == 403
    signer = Signer(platform.access_key, platform.iam_secret_key)
    token = httpx.get(platform.base_url + "/v1/BCE-BEARER/token", auth=signer, timeout=30).json()["token"]
    for i in range(5):  # the last spans are still queued for the trace writer when the stop comes
        assert httpx.post(platform.base_url + "/v1/chat/completions", timeout=30,
                          headers={"Authorization": f"Bearer {token}"},
                          json={"model": "Tiny-Chat", "messages": [{"role": "user", "content": f"call {i}"}]},
                          ).status_code == 200
    assert daemon.stop_daemon(data_dir)["stopped"] is True
    assert not runtime.exists() and not daemon._pid_alive(platform.pid)
    assert daemon.daemon_status(data_dir) is None
    with contextlib.closing(sqlite3.connect(data_dir / TRACES_FILE)) as db:  # a stop writes what was queued
        assert db.execute("SELECT COUNT(*), MIN(output_tokens) FROM spans").fetchone()[0] == 5


def _an_idle_connection_outlives_a_client_pool_s_keep_alive(base_url: str) -> None:
    """A connection idle for 6 s (past httpx's and the openai SDK's 5 s pools, uvicorn's own 5 s) still answers:
    the client closes it first, never the server as a poll reuses it ("Server disconnected without sending a
    response")."""
    host, port = base_url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        for wait in (0.0, 6.0):
            time.sleep(wait)
            conn.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            got = b""
            while b"\r\n\r\n" not in got and (chunk := conn.recv(65536)):
                got += chunk
            head, _, body = got.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), (wait, got[:200])  # b"": the server closed it
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            while len(body) < length:
                body += conn.recv(65536)


def test_two_processes_racing_get_one_daemon(data_dir: Path) -> None:
    code = f"""
        from qfnb._core.backend.daemon import ensure_daemon
        print(ensure_daemon(serve_args={DOUBLES!r}).pid)
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen(_script(code), stdout=subprocess.PIPE, text=True, env=env, cwd=REPO) for _ in range(3)]
    pids = {int(p.communicate(timeout=120)[0].split()[-1]) for p in procs}
    assert len(pids) == 1
    (pid,) = pids
    assert daemon._pid_alive(pid)  # outlives the processes that started it
    assert daemon.ensure_daemon(data_dir).pid == pid


def test_stale_runtime_file_is_replaced(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (data_dir / RUNTIME_FILE).write_text(json.dumps({
        "url": "http://127.0.0.1:9", "pid": dead.pid, "version": "0.1.0", "started": 0, "control_token": "x"}))
    platform = daemon.ensure_daemon(data_dir, serve_args=DOUBLES)
    assert platform.pid != dead.pid and daemon.Control(daemon.read_runtime(data_dir)).answers()  # type: ignore[arg-type]


def test_other_version_is_restarted_when_idle(data_dir: Path) -> None:
    first = daemon.ensure_daemon(data_dir, serve_args=DOUBLES)
    runtime = data_dir / RUNTIME_FILE
    record = json.loads(runtime.read_text())
    runtime.write_text(json.dumps({**record, "version": "0.0.1"}))
    daemon._known.clear()
    second = daemon.ensure_daemon(data_dir, serve_args=DOUBLES)
    assert second.pid != first.pid and not daemon._pid_alive(first.pid)


FINETUNE = """\
from qfnb.dataset import Dataset
from qfnb.trainer import LLMFinetune, TrainConfig
rows = [{{"prompt": f"q{{i}}", "response": f"a{{i}}"}} for i in range(8)]
trainer = LLMFinetune(train_type="Tiny-Chat", dataset=Dataset.create_from_pyobj(rows),
                      train_config=TrainConfig(epoch=1, batch_size=2, max_steps={steps},
                                               extras={{"stepSeconds": {pace}}}))
"""


def _finetune_in_background(steps: int, pace: float) -> subprocess.Popen[str]:
    """A script that starts a fine-tune and is then killed: the job must not die with it."""
    code = FINETUNE.format(steps=steps, pace=pace) + "trainer.start()\nprint(trainer.id, flush=True)\n" \
        "import time\ntime.sleep(600)\n"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(_script(code), stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)


def _runs(platform: daemon.LocalPlatform) -> list[dict[str, str]]:
    status = daemon.daemon_status(platform.data_dir)
    assert status is not None
    return [{"kind": j.kind, "id": j.id, "status": j.status} for j in status.jobs_running]


def test_job_outlives_the_process_that_started_it_and_a_daemon_sigkill(data_dir: Path) -> None:
    platform = daemon.ensure_daemon(data_dir, serve_args=DOUBLES)
    script = _finetune_in_background(steps=40, pace=0.1)
    try:
        assert script.stdout is not None
        pipeline_id = script.stdout.readline().strip()
        assert pipeline_id
        deadline = time.time() + 30
        while not _runs(platform) and time.time() < deadline:
            time.sleep(0.1)
        assert _runs(platform), "the fine-tune never started"
    finally:
        script.kill()  # the kernel that started it goes away
        script.wait()
    assert _runs(platform)[0]["kind"] == "fine-tune"
    # stop refuses while the job runs
    assert daemon.stop_daemon(data_dir)["running"] is True
    os.kill(platform.pid, signal.SIGKILL)  # the daemon dies mid-fine-tune
    deadline = time.time() + 10
    while daemon._pid_alive(platform.pid) and time.time() < deadline:
        time.sleep(0.05)
    again = daemon.ensure_daemon(data_dir, serve_args=DOUBLES)
    assert again.pid != platform.pid and again.base_url == platform.base_url  # same port: old URLs keep working
    code = f"""
        from qfnb.trainer import LLMFinetune
        trainer = LLMFinetune.load({pipeline_id!r})
        trainer.resume()
        print(trainer.status)
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(_script(code), capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "ModelPublished", done.stdout
    assert "Traceback" not in done.stderr


def test_kernel_loads_nothing_heavy(data_dir: Path) -> None:
    """Chat, embedding and a fine-tune from a 'kernel': no torch, transformers, llama_cpp or
    qfnb.local in that process, its environment untouched, nothing on its stderr."""
    daemon.ensure_daemon(data_dir, serve_args=DOUBLES)
    tail = """
        trainer.run()
        import os, sys, qfnb
        print(qfnb.ChatCompletion(model="Tiny-Chat").do(messages=[{"role": "user", "content": "hi"}])["result"])
        print(len(qfnb.Embedding(model="Tiny-Embed").do(texts=["a", "b"])["data"]))
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "llama_cpp")
                       or m.startswith(("qfnb.local", "uvicorn", "starlette")))
        print("HEAVY", heavy, "HF_HUB_OFFLINE" in os.environ)
    """
    code = FINETUNE.format(steps=3, pace=0.01) + textwrap.dedent(tail)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("HF_HUB_OFFLINE", None)
    done = subprocess.run(_script(code), capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "HEAVY [] False" in done.stdout, done.stdout
    assert "tiny-chat: hi" in done.stdout.lower()
    assert done.stderr.strip() == ""


def test_trainer_list_shows_only_this_data_dirs_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qfnb.trainer import LLMFinetune
    from qfnb.trainer.records import persist

    monkeypatch.delenv("QIANFAN_CACHE_DIR", raising=False)
    monkeypatch.setenv("QFNB_DATA_DIR", str(tmp_path / "a"))
    persist.write_record({"id": "ppl-in-a", "name": "a", "status": "Training", "actions": []})
    assert [r["id"] for r in LLMFinetune.list()] == ["ppl-in-a"]
    assert persist.pipeline_dir().is_relative_to(tmp_path / "a")
    monkeypatch.setenv("QFNB_DATA_DIR", str(tmp_path / "b"))
    assert LLMFinetune.list() == []
