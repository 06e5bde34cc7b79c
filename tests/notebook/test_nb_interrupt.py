"""Kernel -> Interrupt is a normal action: partial answer kept, one line, the stream closed."""

from __future__ import annotations

import _thread
import asyncio
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from nb_doubles import FakeChatBackend, RecordingPublisher

from qfnb.local.engines.ask import Sampling
from qfnb.notebook.chat.answer import CellChatRequest, ChatDelta
from qfnb.notebook.errors import QfnbInterrupted
from qfnb.notebook.training.dashboard import TrainingDashboard
from tests.fakes.local_platform import served_platform
from tests.local.platform_doubles import FakeChat, FakeDelta, FakeRegistry
from tests.notebook.evaluation.test_nb_qfeval_run import platform  # noqa: F401  (the platform double fixture)


@pytest.fixture(autouse=True)
def _ctrl_c_raises() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt here, as in a kernel (ipykernel installs that handler). A
    test run started from a shell's background job inherits SIGINT ignored, and then
    ``_thread.interrupt_main`` does nothing."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def interrupt_after(seconds: float) -> None:
    threading.Timer(seconds, _thread.interrupt_main).start()


class EndlessBackend:
    """A server that never stops generating until the client closes the stream."""

    conversations = None

    def __init__(self) -> None:
        self.opened = 0
        self.closed = threading.Event()

    def default_model(self) -> str | None:
        return None

    def where(self) -> str | None:
        return None

    def engine_state(self, request: CellChatRequest, label: str) -> None:
        return None

    async def stream(self, request: CellChatRequest) -> AsyncIterator[ChatDelta]:
        self.opened += 1
        try:
            for _ in range(1500):  # 30 s: a missed interrupt fails the test instead of hanging it
                await asyncio.sleep(0.02)
                yield ChatDelta(text="tok ")
        finally:  # what closing the HTTP stream is, for the real backend
            self.closed.set()


def test_interrupt_keeps_partial_answer_closes_stream_one_line(ip: Any, pub: RecordingPublisher) -> None:
    backend = EndlessBackend()
    magics = ip.magics_manager.registry["QfnbMagics"]
    magics.chat_backend, magics.update_interval = backend, 0.02
    interrupt_after(0.4)
    with pytest.raises(QfnbInterrupted) as info:
        ip.run_cell_magic("qfchat", "-o partial", "go on forever")
    assert info.value._render_traceback_()[0].count("\n") == 0  # one line, no traceback
    assert backend.opened == 1 and backend.closed.is_set(), "the stream was closed"
    final = pub.outputs[-1]["data"]
    assert final["text/plain"].startswith("tok tok")
    assert "interrupted" in final["text/plain"] and "▌" not in final["text/html"]
    assert "streaming…" not in final["text/html"]
    answer = ip.user_ns["partial"]
    assert answer.interrupted and str(answer).startswith("tok")


def test_interrupt_in_a_shell_cell_prints_no_traceback(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    magics = ip.magics_manager.registry["QfnbMagics"]
    magics.chat_backend = FakeChatBackend("x" * 400, chunk=1, delay=0.01)
    interrupt_after(0.3)
    ip.run_cell("%%qfchat\nhello")
    err = capsys.readouterr()
    text = err.out + err.err
    assert "interrupted" in text and "Traceback" not in text and "threading.py" not in text


def test_wait_returns_control_with_one_line_and_the_job_goes_on() -> None:
    dash = TrainingDashboard("job")
    interrupt_after(0.2)
    with pytest.raises(QfnbInterrupted) as info:
        dash.wait(30)
    assert "still" in str(info.value) and "\n" not in info.value._render_traceback_()[0]
    dash.finish("succeeded")  # the job was not touched by the interrupt
    assert dash.wait(1).status == "succeeded"


def test_platform_stream_names_the_model_and_cancel_ends_it(platform: Any) -> None:  # noqa: F811
    """The real backend through the client stack: the answering model's name comes first, the
    text follows; cancelling the reader on qfnb's loop (what Interrupt does) ends it at once and
    closes the stream while the server is still generating (its engine holds the answer open)."""
    from qfnb._core.runtime import sync
    from qfnb.notebook.chat.answer import ResourcesBackend

    backend = ResourcesBackend()

    async def collect(request: CellChatRequest) -> list[ChatDelta]:
        return [d async for d in backend.stream(request)]

    deltas = sync.run(collect(CellChatRequest(messages=[{"role": "user", "content": "hi there"}], model="Tiny-Chat")))
    assert deltas[0].model == "Tiny-Chat" and "".join(d.text for d in deltas) == "tiny-chat: hi there"
    engine, release = platform.chat("tiny-chat").engine, threading.Event()  # the blocking double behind the face
    words = engine._words

    def held(text: str, params: dict[str, Any]) -> Iterator[Any]:
        for i, delta in enumerate(words(text, params)):
            if i == 3:
                release.wait(60)  # mid-answer until released
            yield delta

    engine._words = held  # type: ignore[method-assign]
    seen: list[ChatDelta] = []
    two, ended = threading.Event(), threading.Event()

    async def read() -> None:
        try:
            async for d in backend.stream(CellChatRequest(messages=[{"role": "user", "content": "w0 w1 w2"}],
                                                      model="Tiny-Chat")):
                seen.append(d)
                if len(seen) >= 2:
                    two.set()
        finally:  # reached once the stream's own finally has closed the response
            ended.set()

    future = sync.submit(read())
    try:
        assert two.wait(60), "the first deltas came"  # a hang guard, not a speed check
        future.cancel()
        # the reader ended while the server was still holding the answer open
        assert ended.wait(60) and not release.is_set()
    finally:
        release.set()
    whole = sync.run(collect(CellChatRequest(messages=[{"role": "user", "content": "hi"}], model="Tiny-Chat",
                                         stream=False)))
    assert "".join(d.text for d in whole) == "tiny-chat: hi" and whole[-1].usage
    with pytest.raises(ValueError, match="No-Such"):  # errors reach the caller (shown as one line)
        sync.run(collect(CellChatRequest(messages=[{"role": "user", "content": "hi"}], model="No-Such")))


class PacedChat(FakeChat):
    """Says a word each 0.1 s; ``stopped``: when a generation was stopped before its end."""

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.stopped: list[float] = []

    def _words(self, text: str, sampling: Sampling) -> Iterator[FakeDelta]:
        try:
            for delta in super()._words(text, sampling):
                time.sleep(0.1)
                yield delta
        except GeneratorExit:
            self.stopped.append(time.monotonic())
            raise


class PacedRegistry(FakeRegistry):
    def make_chat(self, tag: str) -> FakeChat:
        return PacedChat(tag)


def test_interrupt_frees_the_local_platforms_engine_at_once(ip: Any, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The call carries an Idempotency-Key (its work would outlive a cut connection, for a retry):
    an Interrupt still stops the generation at once, not after the platform's 30 s grace."""
    with served_platform(tmp_path / "platform", registry=PacedRegistry(), heartbeat=0) as served:
        served.as_default_backend(monkeypatch)
        interrupted: list[float] = []

        def interrupt_once_generating() -> None:
            deadline = time.monotonic() + 20
            while "tiny-chat" not in served.registry.engines and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # a few words in
            interrupted.append(time.monotonic())
            _thread.interrupt_main()

        threading.Thread(target=interrupt_once_generating, daemon=True).start()
        with pytest.raises(QfnbInterrupted):
            ip.run_cell_magic("qfchat", "", " ".join(f"w{i}" for i in range(100)))  # 10 s of words
        engine = served.registry.engines["tiny-chat"]
        assert isinstance(engine, PacedChat)
        deadline = time.monotonic() + 5
        while not engine.stopped and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine.stopped and engine.stopped[0] - interrupted[0] < 1.5
