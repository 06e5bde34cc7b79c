"""Issue 26 (item 2): a call that finds the local daemon dead brings it back by itself.

The real ``qfnb serve --daemon`` runs in a detached process with engine doubles that take their
time; it is SIGKILLed while a ``batch_do`` writes its file and while a stream waits for its
first token. The calls resume on a new daemon (same port) with nothing lost or duplicated, and
an engine the killed daemon started dies with it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from qfnb._core.backend import daemon

REPO = Path(__file__).resolve().parents[2]
SLOW = ["--registry", "tests.local.probe_doubles:SlowRegistry",
        "--worker-command", f"{sys.executable} {Path(__file__).with_name('fake_worker.py')}"]


@pytest.fixture
def data_dir(daemon_data_dir: Path) -> Path:
    return daemon_data_dir


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 10
    while daemon._pid_alive(pid) and time.time() < deadline:
        time.sleep(0.02)


def _client_config(platform: daemon.LocalPlatform):  # type: ignore[no-untyped-def]
    from qfnb._core.config import resolve_config, set_default_backend

    set_default_backend(lambda: daemon.ensure_daemon(platform.data_dir, serve_args=SLOW))
    try:
        return resolve_config()
    finally:
        set_default_backend(None)


def test_a_batch_resumes_by_itself_after_a_daemon_sigkill(data_dir: Path, tmp_path: Path) -> None:
    from qfnb.resources.inference.chat import ChatCompletion

    platform = daemon.ensure_daemon(data_dir, serve_args=SLOW)
    out = tmp_path / "answers.jsonl"
    prompts = [[{"role": "user", "content": f"prompt {i}"}] for i in range(300)]
    chat = ChatCompletion(model="tiny-chat", config=_client_config(platform))
    future = chat.batch_do(prompts, worker_num=8, output_file=out)
    deadline = time.time() + 60
    while (not out.exists() or len(out.read_text().splitlines()) < 20) and time.time() < deadline:
        time.sleep(0.05)
    done_before = len(out.read_text().splitlines())
    assert 20 <= done_before < 300, "the batch must be under way when the daemon dies"
    _kill(platform.pid)
    future.wait()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    indices = [r["index"] for r in rows]
    assert sorted(indices) == list(range(300)), "every input answered exactly once"
    failed = [r for r in rows if r.get("error")]
    assert not failed, failed[:3]
    texts = {r["index"]: json.dumps(r) for r in rows}
    assert all(f"tiny-chat: prompt {i}" in texts[i] for i in range(300))
    again = daemon.read_runtime(data_dir)
    assert again is not None and again.pid != platform.pid and again.url == platform.base_url


def test_a_stream_resumes_by_itself_after_a_daemon_sigkill(data_dir: Path) -> None:
    from qfnb.resources.inference.chat import ChatCompletion

    platform = daemon.ensure_daemon(data_dir, serve_args=SLOW)
    chat = ChatCompletion(model="tiny-chat", config=_client_config(platform))
    pieces: list[str] = []
    errors: list[BaseException] = []

    def stream() -> None:
        try:
            for chunk in chat.do([{"role": "user", "content": "slow answer please"}], stream=True):
                pieces.append(chunk["result"])
        except BaseException as exc:  # reported below
            errors.append(exc)

    worker = threading.Thread(target=stream)
    worker.start()
    time.sleep(0.5)  # the request is in; its first token is 2 s away
    _kill(platform.pid)
    worker.join(60)
    assert not errors, errors
    assert "".join(pieces) == "tiny-chat: slow answer please"


FAKE_LLAMA = textwrap.dedent("""\
    #!{python}
    import runpy, sys
    sys.path.insert(0, {tests!r})
    runpy.run_path({fake!r}, run_name="__main__")
""")  # tests/local/fake_llama_server.py: binds --port 0 and logs the address as llama-server does


def test_an_engine_dies_with_the_platform_process(tmp_path: Path) -> None:
    binary = tmp_path / "bin" / "llama-server"
    binary.parent.mkdir()
    binary.write_text(FAKE_LLAMA.format(python=sys.executable, tests=str(Path(__file__).parent),
                                        fake=str(Path(__file__).with_name("fake_llama_server.py"))))
    binary.chmod(0o755)
    code = textwrap.dedent(f"""
        import sys, time, threading
        from pathlib import Path
        from qfnb.local.engines.llama.process.command import ServerConfig
        from qfnb.local.engines.llama.process.server import LlamaServer
        config = ServerConfig(name="m", gguf=Path({str(tmp_path / 'm.gguf')!r}), log_dir=Path({str(tmp_path)!r}),
                              slots=1)
        server = LlamaServer(config, binary=Path({str(binary)!r}))
        lease = []
        t = threading.Thread(target=lambda: lease.append(server.acquire()))  # a short-lived thread starts it
        t.start(); t.join()
        print(server.pid, flush=True)
        time.sleep(600)
    """)
    platform = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
    engine = 0
    try:
        assert platform.stdout is not None
        engine = int(platform.stdout.readline())
        time.sleep(1.5)  # the starting thread is long gone: the engine must still run
        assert daemon._pid_alive(engine), "the engine died with the thread that started it"
        os.kill(platform.pid, signal.SIGKILL)
        platform.wait()
        deadline = time.time() + 5
        while daemon._pid_alive(engine) and time.time() < deadline:
            time.sleep(0.05)
        assert not daemon._pid_alive(engine), "the engine outlived the platform process"
    finally:
        platform.kill()
        platform.wait()
        if engine and daemon._pid_alive(engine):
            os.kill(engine, signal.SIGKILL)


def test_a_second_daemon_for_the_same_data_dir_refuses_to_start(data_dir: Path) -> None:
    first = daemon.ensure_daemon(data_dir, serve_args=SLOW)
    before = (data_dir / "runtime.json").read_text()
    second = subprocess.run([sys.executable, "-m", "qfnb.cli", "serve", "--daemon", "--data-dir", str(data_dir),
                             "--port", "0", *SLOW], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    assert second.returncode == 3, second.stderr[-2000:]
    assert "already serves" in second.stderr
    assert (data_dir / "runtime.json").read_text() == before  # the first stays the one clients find
    status = daemon.daemon_status(data_dir)
    assert status is not None and status.url == first.base_url
