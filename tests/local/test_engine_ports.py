"""Engines bind their own port (``--port 0``) and report it: nothing picks a port and releases it
for another process to take. A new adapter set starts a new process only once the old one has
finished its requests (the two would slow each other's decoding many times over)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from qfnb.local.engines.llama.server import Lease, LlamaServer, ServerConfig, reported_port
from qfnb.local.server import listen

FAKE = Path(__file__).with_name("fake_llama_server.py")


def test_the_port_is_read_from_llama_servers_own_log_line() -> None:
    line = b"main: model loaded\nsrv          main: listening on http://127.0.0.1:41234\n"
    assert reported_port(line) == 41234
    assert reported_port(b"srv  load_model: loading model\n") is None


@pytest.fixture()
def fake_binary(tmp_path: Path) -> Path:
    binary = tmp_path / "llama-server"
    binary.write_text(f"#!{sys.executable}\n" + FAKE.read_text())
    binary.chmod(0o755)
    return binary


def test_llama_server_binds_port_0_and_the_engine_uses_the_port_it_reports(tmp_path: Path,
                                                                           fake_binary: Path) -> None:
    config = ServerConfig(name="fake", gguf=tmp_path / "m.gguf", log_dir=tmp_path / "logs", idle_seconds=3600)
    config.log_dir.mkdir()
    # a line left in the log by an earlier process must not be taken for this one's
    (config.log_dir / "engine-fake.log").write_text("srv          main: listening on http://127.0.0.1:1\n")
    engine = LlamaServer(config, binary=fake_binary)
    try:
        lease = engine.acquire()
        engine.release(lease)
        port = int(lease.url.rsplit(":", 1)[1])
        argv = Path(f"/proc/{engine.pid}/cmdline").read_bytes().split(b"\0")
        assert argv[argv.index(b"--port") + 1] == b"0"
        assert port not in (0, 1) and engine.state == "ready"
        assert f"listening on http://127.0.0.1:{port}" in (config.log_dir / "engine-fake.log").read_text()
    finally:
        engine.close()


def test_a_taken_preferred_port_falls_back_to_a_free_one() -> None:
    first = listen.bind("127.0.0.1")
    try:
        taken = listen.bound_port(first)
        second = listen.bind_preferring("127.0.0.1", taken)
        try:
            assert listen.bound_port(second) not in (0, taken)
            assert listen.url_of(second) == f"http://127.0.0.1:{listen.bound_port(second)}"
        finally:
            second.close()
        with pytest.raises(OSError):
            listen.bind("127.0.0.1", taken)
    finally:
        first.close()


def test_a_new_adapter_set_waits_for_the_old_process_to_finish_its_requests(tmp_path: Path,
                                                                            fake_binary: Path) -> None:
    config = ServerConfig(name="fake", gguf=tmp_path / "m.gguf", log_dir=tmp_path / "logs", idle_seconds=3600)
    engine = LlamaServer(config, binary=fake_binary)
    adapter = tmp_path / "tuned.gguf"
    try:
        running = engine.acquire()  # a base-model request under way on the first process
        old = running.instance
        engine.add_adapter(adapter)
        leases: dict[str, object] = {}
        waiters = [threading.Thread(target=lambda k=k, a=a: leases.__setitem__(k, engine.acquire(a)))
                   for k, a in (("tuned", adapter), ("base", None))]
        for w in waiters:
            w.start()
        waiters[0].join(1.0)
        # neither the tuned request nor a new base request went anywhere, and only one process runs
        assert not leases and old.draining and old.alive() and engine.pid == old.proc.pid
        engine.release(running)
        for w in waiters:
            w.join(30)
        tuned, base = leases["tuned"], leases["base"]
        assert isinstance(tuned, Lease) and isinstance(base, Lease)
        assert tuned.instance is base.instance is not old and tuned.adapters == (adapter,)
        old.proc.wait(15)  # the replaced process stops once its last request is released
        engine.release(tuned)
        engine.release(base)
    finally:
        engine.close()
