"""Engines bind their own port (``--port 0``) and report it: nothing picks a port and releases it
for another process to take. A run's checkpoints load together; an adapter registered later is loaded
into the running process where it can load one at runtime, else a new process starts beside the
running one, which serves on until the new one is ready and then finishes its requests."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import httpx
import pytest

from qfnb.local.engines.llama.process.command import ServerConfig, reported_port
from qfnb.local.engines.llama.process.server import EngineUnavailable, Lease, LlamaServer
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


def test_a_new_adapter_set_starts_beside_the_running_process_which_serves_on_until_it_is_ready(
        tmp_path: Path, fake_binary: Path) -> None:
    config = ServerConfig(name="fake", gguf=tmp_path / "m.gguf", log_dir=tmp_path / "logs", idle_seconds=3600)
    engine = LlamaServer(config, binary=fake_binary)
    adapter = tmp_path / "tuned.gguf"
    adapter.write_bytes(b"GGUF")
    try:
        running = engine.acquire()  # a base-model request under way on the first process
        old = running.instance
        assert engine.starts == 1
        engine.add_adapters([adapter])
        leases: dict[str, Lease] = {}
        tuned = threading.Thread(target=lambda: leases.__setitem__("tuned", engine.acquire(adapter)))
        tuned.start()
        # while the new process starts, a base request is served at once by the running one
        base = engine.acquire()
        assert base.instance is old and old.alive() and not old.retired
        engine.release(base)
        tuned.join(30)
        assert old.loads_adapters is False  # it was asked, and has no runtime load (404): the fallback
        assert leases["tuned"].instance is not old and leases["tuned"].adapters == (adapter,)
        assert old.retired and old.alive()  # finishing the request it has: nothing is cut
        after = engine.acquire()  # new requests go to the new process
        assert after.instance is leases["tuned"].instance
        engine.release(running)
        old.proc.wait(15)  # the replaced process stops once its last request is released
        engine.release(after)
        engine.release(leases["tuned"])
        assert engine.starts == 2 and engine.loads == 0
    finally:
        engine.close()


def test_an_engine_that_loads_adapters_at_runtime_serves_a_new_one_from_the_running_process(
        tmp_path: Path, fake_binary: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_LORA_LOAD", "1")
    config = ServerConfig(name="fake", gguf=tmp_path / "m.gguf", log_dir=tmp_path / "logs", idle_seconds=3600)
    engine = LlamaServer(config, binary=fake_binary)
    first, steps = tmp_path / "first.gguf", [tmp_path / f"step-{i}.gguf" for i in (8, 16)]
    for f in (first, *steps):
        f.write_bytes(b"GGUF")
    try:
        engine.add_adapters([first])
        running = engine.acquire()  # a request under way: it keeps its process throughout
        proc = running.instance
        engine.add_adapters(steps)  # a deploy after the start
        tuned = engine.acquire(steps[1])
        assert tuned.instance is proc and proc.loads_adapters is True
        assert tuned.adapters == (first, steps[1])  # ids in the engine: 0 from the start, 1 loaded now
        assert tuned.lora(steps[1]) == [{"id": 0, "scale": 0.0}, {"id": 1, "scale": 1.0}]
        again = engine.acquire(steps[1])  # loaded once
        other = engine.acquire(steps[0])
        assert other.lora(steps[0])[2] == {"id": 2, "scale": 1.0} and other.instance is proc
        for lease in (running, tuned, again, other):
            engine.release(lease)
        listed = httpx.get(f"{proc.url}/lora-adapters", timeout=5).json()
        assert [a["path"] for a in listed] == [str(first), str(steps[1]), str(steps[0])]
        assert engine.starts == 1 and engine.loads == 2 and proc.alive() and not proc.retired
    finally:
        engine.close()


def test_a_runs_checkpoints_load_together_so_serving_another_needs_no_new_process(tmp_path: Path,
                                                                                fake_binary: Path) -> None:
    config = ServerConfig(name="fake", gguf=tmp_path / "m.gguf", log_dir=tmp_path / "logs", idle_seconds=3600)
    engine = LlamaServer(config, binary=fake_binary)
    steps = [tmp_path / f"step-{i}.gguf" for i in (8, 16, 24)]
    for step in steps:
        step.write_bytes(b"GGUF")
    try:
        engine.add_adapters(steps)
        engine.add_adapters(steps[1:])  # registering one again (a second deploy) adds nothing
        first = engine.acquire(steps[0])
        assert first.lora(steps[0]) == [{"id": 0, "scale": 1.0}, {"id": 1, "scale": 0.0}, {"id": 2, "scale": 0.0}]
        for step in (*steps, None):
            lease = engine.acquire(step)
            assert lease.instance is first.instance
            engine.release(lease)
        engine.release(first)
        assert engine.starts == 1
        argv = Path(f"/proc/{engine.pid}/cmdline").read_bytes().split(b"\0")
        assert argv.count(b"--lora") == 3 and b"--lora-init-without-apply" in argv
        # a deleted task's checkpoint is not passed to the next process (its file is gone)
        steps[1].unlink()
        engine.unload()
        lease = engine.acquire()
        engine.release(lease)
        assert lease.adapters == (steps[0], steps[2]) and engine.starts == 2
        with pytest.raises(EngineUnavailable, match="removed"):
            engine.acquire(steps[1])
    finally:
        engine.close()


def test_a_request_the_engine_refuses_names_the_engine_and_its_answer(tmp_path: Path, fake_binary: Path) -> None:
    config = ServerConfig(name="fake", gguf=tmp_path / "m.gguf", log_dir=tmp_path / "logs", idle_seconds=3600)
    engine = LlamaServer(config, binary=fake_binary)
    try:
        with pytest.raises(EngineUnavailable, match=r"^fake: the embedding engine answered 501"):
            engine.post_json("/v1/embeddings", {"input": ["a"]}, "the embedding engine", 30)
        lease = engine.acquire()  # the failed request gave its lease back: the same process serves on
        assert lease.instance.active == 1 and engine.starts == 1
        engine.release(lease)
    finally:
        engine.close()


@pytest.mark.parametrize("patched", [True, False])
def test_the_engine_reads_which_of_its_builds_switches_it_took(
        tmp_path: Path, fake_binary: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        patched: bool) -> None:
    """The process is started with our builds' switches in its environment (a llama-server without
    them ignores them) and its ``/props`` says which the build took: the patched one takes them all
    (batch-invariant seeds, one-line JSON, grammar drafts), upstream's has no such fields, and the log
    then says what a seed no longer promises and that structured answers are not drafted."""
    if patched:
        monkeypatch.setenv("FAKE_PATCHED", "1")
    config = ServerConfig(name="fake", gguf=tmp_path / "m.gguf", log_dir=tmp_path / "logs", idle_seconds=3600)
    engine = LlamaServer(config, binary=fake_binary)
    try:
        lease = engine.acquire()
        engine.release(lease)
        assert lease.instance.seeds_invariant is patched and engine.seeds_invariant is patched
        assert lease.instance.grammar_drafts is patched and engine.grammar_drafts is patched
        for lacking in ("no batch-invariant kernels", "no grammar drafts"):
            warned = [r.getMessage() for r in caplog.records if lacking in r.getMessage()]
            assert len(warned) == (0 if patched else 1), warned
        environ = Path(f"/proc/{engine.pid}/environ").read_bytes().split(b"\0")
        for switch in (b"LLAMA_ARG_SEED_BATCH_INVARIANT=1", b"LLAMA_ARG_JSON_ONE_LINE=1", b"LLAMA_ARG_SPEC_GRAMMAR=1"):
            assert switch in environ
    finally:
        engine.close()
