"""No request may hold the shared engine: the compute deadline and the stall watchdog, against a
slow-engine double of llama-server's one decode loop (``fake_llama_server.py``, ``FAKE_DECODE=1``):
a request under a grammar that holds the loop is cancelled with an error naming the setting, the
engine (which ignores SIGTERM and its probe) is killed and restarted, and another user's stream
cut by the restart goes on on the new process, whole."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_asks import text_ask
from fake_engine import fake_engine

from qfnb.local.engines.ask import ChatAsk, Sampling
from qfnb.local.engines.base import Delta
from qfnb.local.engines.gate import run_blocking
from qfnb.local.engines.llama import watchdog
from qfnb.local.engines.llama.engine import LlamaEngine
from qfnb.local.engines.llama.process.server import LlamaServer
from qfnb.local.engines.llama.watchdog import ComputeDeadline, EngineStalled
from qfnb.local.engines.options import EngineOptions

LOAD_STRETCH = watchdog.load_stretch  # the real one (the tests pin it at 1 but one)


@pytest.fixture(autouse=True)
def quiet_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The limits as on a machine with CPUs to spare (the suite's own load would stretch the stall)."""
    monkeypatch.setattr(watchdog, "load_stretch", lambda: 1.0)


@pytest.fixture()
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LlamaEngine, LlamaServer]]:
    yield from _engine(tmp_path, monkeypatch, request_seconds=2.5)


def _engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
            request_seconds: float) -> Iterator[tuple[LlamaEngine, LlamaServer]]:
    monkeypatch.setenv("FAKE_DECODE", "1")
    with fake_engine(tmp_path, 4, stall_seconds=1.0, request_seconds=request_seconds) as made:
        yield made


async def _answer(chat: LlamaEngine, ask: object, started: asyncio.Event | None = None) -> list[Delta]:
    out = []
    async for delta in chat.generate(ask):  # type: ignore[arg-type]
        out.append(delta)
        if started is not None and delta.text:
            started.set()
    return out


def test_a_request_that_holds_the_decode_loop_is_cancelled_and_the_others_lose_nothing(
        engine: tuple[LlamaEngine, LlamaServer]) -> None:
    chat, server = engine
    culprit = ChatAsk(model="", messages=({"role": "user", "content": "fill the form"},),
                      sampling=Sampling(max_tokens=10), schema={"type": "string", "pattern": "^([a-z]{0,40}){0,40}$"})
    victim = text_ask("another user's long answer", max_tokens=40)

    async def both() -> tuple[BaseException | list[Delta], BaseException | list[Delta]]:
        streaming = asyncio.Event()
        other = asyncio.create_task(_answer(chat, victim, streaming))
        await streaming.wait()
        held = await asyncio.gather(_answer(chat, culprit), return_exceptions=True)
        return held[0], await other

    first = run_blocking(lambda: _answer(chat, victim))  # the engine up; the whole answer, undisturbed
    held, cut = run_blocking(both)
    assert isinstance(held, EngineStalled), held
    assert "QFNB_ENGINE_STALL_SECONDS" in str(held) and "grammar" in str(held) and "restarted" in str(held)
    assert not isinstance(cut, BaseException)
    words = "".join(d.text for d in cut)
    assert words == "".join(d.text for d in first) == "".join(f" w{i}" for i in range(40))  # nothing lost or twice
    assert cut[-1].completion_tokens == 40 and cut[-1].finish_reason is not None
    # its prompt went as text (short); the continuation's usage names the first send's prompt, counted
    assert cut[-1].prompt_tokens == first[-1].prompt_tokens == 4
    assert server.starts == 2 and server.state == "ready"  # the stuck process was killed, a new one serves
    again = run_blocking(lambda: _answer(chat, text_ask("after", max_tokens=3)))
    assert "".join(d.text for d in again) == " w0 w1 w2"


def test_a_request_past_the_compute_deadline_is_cancelled_and_the_engine_serves_on(
        engine: tuple[LlamaEngine, LlamaServer]) -> None:
    chat, server = engine
    with pytest.raises(ComputeDeadline, match=r"compute deadline of 2\.5 s \(QFNB_ENGINE_REQUEST_SECONDS\).*"
                                              r"waited \d+\.\d s for its first token, then generated [1-9]\d* tokens"):
        run_blocking(lambda: _answer(chat, text_ask("a very long answer", max_tokens=400)))
    assert "".join(d.text for d in run_blocking(lambda: _answer(chat, text_ask("short", max_tokens=2)))) == " w0 w1"
    assert server.starts == 1


def test_an_engine_that_ignores_a_cancellation_is_restarted(engine: tuple[LlamaEngine, LlamaServer]) -> None:
    chat, server = engine
    with pytest.raises(ComputeDeadline, match="QFNB_ENGINE_REQUEST_SECONDS"):
        run_blocking(lambda: _answer(chat, text_ask("deaf answer", max_tokens=400)))
    # its slot went on after the connection closed: the process was killed; the next request starts one
    assert "".join(d.text for d in run_blocking(lambda: _answer(chat, text_ask("next", max_tokens=2)))) == " w0 w1"
    assert server.starts == 2


def test_prompt_progress_counts_and_a_silent_request_alone_is_cancelled(
        engine: tuple[LlamaEngine, LlamaServer]) -> None:
    chat, server = engine
    # 1.8 s of prompt reading (progress chunks 0.3 s apart) under a 1 s stall limit: not a stall
    slow = run_blocking(lambda: _answer(chat, text_ask("slowprefill prompt", max_tokens=3)))
    assert "".join(d.text for d in slow) == " w0 w1 w2"
    with pytest.raises(EngineStalled, match=r"no decode progress for 1 s \(QFNB_ENGINE_STALL_SECONDS\).*goes on.*"
                                            r"no token after \d+\.\d s \(queued, or reading its prompt\)"):
        run_blocking(lambda: _answer(chat, text_ask("silent prompt", max_tokens=3)))
    assert server.starts == 1 and server.state == "ready"  # its loop answered: not restarted


@pytest.fixture()
def patient_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LlamaEngine, LlamaServer]]:
    """The engine with a compute deadline past a slow prompt's reading (only the stall is under test)."""
    yield from _engine(tmp_path, monkeypatch, request_seconds=60)


def test_an_honest_long_prompt_on_an_overloaded_machine_is_not_a_stall(
        patient_engine: tuple[LlamaEngine, LlamaServer], monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe: the watchdog restarted the engine over honest long prompts on an overloaded machine
    (each prompt chunk slower than the stall limit). The limit is stretched by the load it sees."""
    chat, server = patient_engine
    monkeypatch.setenv("FAKE_PREFILL_SECONDS", "1.4")  # each prompt chunk past the 1 s limit (read as it starts)
    monkeypatch.setattr(watchdog.os, "getloadavg", lambda: (6.0, 6.0, 6.0))
    monkeypatch.setattr(watchdog.os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(watchdog, "load_stretch", LOAD_STRETCH)
    assert watchdog.load_stretch() == 3.0  # a run queue three times the CPUs
    slow = run_blocking(lambda: _answer(chat, text_ask("slowprefill prompt", max_tokens=3)))
    assert "".join(d.text for d in slow) == " w0 w1 w2" and server.starts == 1
    monkeypatch.setattr(watchdog.os, "getloadavg", lambda: (1.0, 1.0, 1.0))  # a quiet machine: a stall
    with pytest.raises(EngineStalled, match=r"no decode progress for 1 s"):
        run_blocking(lambda: _answer(chat, text_ask("slowprefill prompt", max_tokens=3)))
    monkeypatch.setattr(watchdog.os, "getloadavg", lambda: (500.0, 1.0, 1.0))
    assert watchdog.load_stretch() == watchdog.MAX_LOAD_STRETCH  # bounded: a stuck loop is still found


@pytest.fixture()
def hasty_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LlamaEngine, LlamaServer]]:
    """The engine with a compute deadline of half a second, its decode loop in 3 s steps when probed."""
    monkeypatch.setenv("FAKE_SLOTS_SECONDS", "3")
    yield from _engine(tmp_path, monkeypatch, request_seconds=0.5)


def test_an_honest_slow_answer_on_an_overloaded_machine_is_neither_cut_nor_restarted(
        hasty_engine: tuple[LlamaEngine, LlamaServer], monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 71: at load 22 on 2 cores the tool model's answers ran past the compute deadline in wall
    time, and the probe after it (the decode loop answers between two steps, each ten times as long
    there) timed out: the engine was killed as stuck and restarted. The deadline now counts compute
    time (wall time over the load) and the probe waits as many times longer."""
    chat, server = hasty_engine
    monkeypatch.setattr(watchdog.os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(watchdog, "load_stretch", LOAD_STRETCH)
    monkeypatch.setattr(watchdog.os, "getloadavg", lambda: (8.0, 8.0, 8.0))  # four times the CPUs' work
    # 1 s of answer (50 tokens, 0.02 s each) is 0.25 s of compute at this load: within the deadline
    answer = run_blocking(lambda: _answer(chat, text_ask("a long answer", max_tokens=50)))
    assert len("".join(d.text for d in answer).split()) == 50 and server.starts == 1
    # 8 s of answer is past it (2 s of wall time here): cancelled, and the probe meets a 3 s step,
    # past its 2 s on a quiet machine but within 8 s at this load: the engine obeys and serves on
    with pytest.raises(ComputeDeadline, match=r"compute deadline of 0\.5 s \(QFNB_ENGINE_REQUEST_SECONDS; "
                                              r"stretched 4\.0 times in wall time by the machine's load\)"):
        run_blocking(lambda: _answer(chat, text_ask("a very long answer", max_tokens=400)))
    assert server.starts == 1 and server.state == "ready"
    # on a quiet machine the same 3 s step is a loop that does not answer: killed, and started again
    monkeypatch.setattr(watchdog.os, "getloadavg", lambda: (1.0, 1.0, 1.0))
    with pytest.raises(ComputeDeadline, match=r"0\.5 s \(QFNB_ENGINE_REQUEST_SECONDS\) and was cancelled"):
        run_blocking(lambda: _answer(chat, text_ask("a very long answer", max_tokens=400)))
    assert "".join(d.text for d in run_blocking(lambda: _answer(chat, text_ask("next", max_tokens=2)))) == " w0 w1"
    assert server.starts == 2


def test_the_limits_are_settings() -> None:
    opts = EngineOptions.from_env({"QFNB_ENGINE_STALL_SECONDS": "12.5", "QFNB_ENGINE_REQUEST_SECONDS": "90"})
    assert (opts.stall_seconds, opts.request_seconds) == (12.5, 90.0)
    assert (EngineOptions.from_env({}).stall_seconds, EngineOptions.from_env({}).request_seconds) == (30.0, 600.0)
    with pytest.raises(ValueError, match="QFNB_ENGINE_STALL_SECONDS must be a number of seconds > 0"):
        EngineOptions.from_env({"QFNB_ENGINE_STALL_SECONDS": "0"})
    with pytest.raises(ValueError, match="QFNB_ENGINE_REQUEST_SECONDS must be a number"):
        EngineOptions.from_env({"QFNB_ENGINE_REQUEST_SECONDS": "soon"})


def test_a_caller_cancelled_as_a_token_arrives_stops_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cancellation of a caller that gives up is never lost: here it comes in the very loop step
    in which a token reaches the reader's queue (where ``asyncio.wait_for`` on Python 3.11 returns
    the token and drops the cancellation, and the engine's slot then writes its whole answer)."""
    pulled = 0
    closed = asyncio.Event()
    caller: asyncio.Task[list[Delta]] | None = None

    async def engine_stream(*_: object, **__: object) -> object:
        nonlocal pulled
        try:
            while pulled < 2000:  # a long answer (fast: the engine would write it all if never told)
                pulled += 1
                yield Delta(text="x", completion_tokens=pulled)
                if pulled == 3 and caller is not None:
                    caller.cancel()  # the caller gives up in the step that queued token 3 for it
                await asyncio.sleep(0.001)
        finally:
            closed.set()  # the engine's connection closed: it cancels the slot

    monkeypatch.setattr(watchdog.transport, "stream", engine_stream)
    watch = watchdog.Watch(stall_seconds=30, request_seconds=600, unstick=lambda *_: False,
                           renew=lambda: target)
    target = watchdog.Endpoint(base_url="http://127.0.0.1:9/v1", watch=watch)

    async def run() -> tuple[bool, int]:
        nonlocal caller

        async def read() -> list[Delta]:
            return [d async for d in watchdog.guarded("fake", target, "/completions", {"prompt": [1]})]

        caller = asyncio.create_task(read())
        with pytest.raises(asyncio.CancelledError):
            await caller
        await asyncio.wait_for(closed.wait(), 2.0)
        return caller.cancelled(), pulled

    cancelled, tokens = asyncio.run(run())
    assert cancelled and tokens < 10, tokens


def test_a_running_process_is_leased_without_blocking_and_none_is_started_for_it(
        engine: tuple[LlamaEngine, LlamaServer]) -> None:
    """``leased`` (asked on the event loop) gives a lease on the running process as ``acquire`` does, and
    None where ``acquire`` would have to start a process or load an adapter."""
    _, server = engine
    assert server.leased() is None  # no process yet
    lease = server.acquire()
    server.release(lease)
    again = server.leased()
    assert again is not None and again.url == lease.url and again.instance.active == 1
    server.release(again)
    assert server.leased(Path("/nowhere/adapter.gguf")) is None  # not registered: acquire says why
    assert server.unload()
    assert server.leased() is None


def test_a_request_to_the_running_process_is_sent_without_a_thread_hop(
        engine: tuple[LlamaEngine, LlamaServer], monkeypatch: pytest.MonkeyPatch) -> None:
    chat, server = engine
    hops: list[str] = []
    to_thread = asyncio.to_thread

    async def counted(fn: object, *args: object) -> object:
        hops.append(str(fn))
        return await to_thread(fn, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio, "to_thread", counted)
    first = run_blocking(lambda: _answer(chat, text_ask("one", max_tokens=3)))
    assert len(hops) == 1 and server.starts == 1  # the first starts the process, in a thread
    again = run_blocking(lambda: _answer(chat, text_ask("two", max_tokens=3)))
    assert len(hops) == 1  # the second is leased on the event loop
    assert "".join(d.text for d in again) == "".join(d.text for d in first) == " w0 w1 w2"


def test_the_streams_limits_are_checked_together_on_whole_seconds_of_the_loops_clock() -> None:
    assert watchdog._next_check(12.0) == 13.0 and watchdog._next_check(12.999) == 13.0
    assert watchdog._next_check(12.3) == watchdog._next_check(12.9)  # two streams, one wake
