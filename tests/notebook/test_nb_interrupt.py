"""Kernel -> Interrupt is a normal action: partial answer kept, one line, the stream closed."""

from __future__ import annotations

import _thread
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from nb_doubles import FakeChatBackend, RecordingPublisher

from qfnb.notebook.chat import ChatDelta, ChatRequest
from qfnb.notebook.errors import QfnbInterrupted
from qfnb.notebook.widgets.dashboard import TrainingDashboard
from tests.notebook.test_nb_qfeval_run import platform  # noqa: F401  (the platform double fixture)


def interrupt_after(seconds: float) -> None:
    threading.Timer(seconds, _thread.interrupt_main).start()


class EndlessStream:
    """A server that never stops generating until the client closes the stream."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[ChatDelta]:
        while not self.closed.is_set():
            time.sleep(0.02)
            yield ChatDelta(text="tok ")

    def cancel(self) -> None:
        self.closed.set()


class EndlessBackend:
    def __init__(self) -> None:
        self.streams: list[EndlessStream] = []

    def stream(self, request: ChatRequest) -> EndlessStream:
        s = EndlessStream()
        self.streams.append(s)
        return s


def test_interrupt_keeps_partial_answer_closes_stream_one_line(ip: Any, pub: RecordingPublisher) -> None:
    backend = EndlessBackend()
    magics = ip.magics_manager.registry["QfnbMagics"]
    magics.chat_backend, magics.update_interval = backend, 0.02
    interrupt_after(0.4)
    with pytest.raises(QfnbInterrupted) as info:
        ip.run_cell_magic("qfchat", "-o partial", "go on forever")
    assert info.value._render_traceback_()[0].count("\n") == 0  # one line, no traceback
    assert backend.streams and backend.streams[0].closed.is_set(), "the stream was closed"
    final = pub.outputs[-1]["data"]
    assert final["text/plain"].startswith("tok tok")
    assert "interrupted" in final["text/plain"] and "▌" not in final["text/markdown"]
    assert "streaming…" not in final["text/markdown"]
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
    text follows; cancel() (what Interrupt calls) ends the iteration at once, while the
    server is still generating (its engine holds the stream open until the test lets go)."""
    from qfnb.notebook.chat import ResourcesBackend

    backend = ResourcesBackend()
    deltas = list(backend.stream(ChatRequest(messages=[{"role": "user", "content": "hi there"}], model="Tiny-Chat")))
    assert deltas[0].model == "Tiny-Chat" and "".join(d.text for d in deltas) == "tiny-chat: hi there"
    engine, release = platform.chat("tiny-chat"), threading.Event()
    words = engine._words

    def held(text: str, params: dict[str, Any]) -> Iterator[Any]:
        for i, delta in enumerate(words(text, params)):
            if i == 3:
                release.wait(60)  # mid-answer (2 chunks sent: the server is one delta behind) until released
            yield delta

    engine._words = held  # type: ignore[method-assign]
    stream: Any = backend.stream(ChatRequest(messages=[{"role": "user", "content": "w0 w1 w2"}], model="Tiny-Chat"))
    it = iter(stream)
    try:
        assert next(it).model == "Tiny-Chat"
        for _ in range(6000):  # until "tiny-chat:" and " w0" wait unread (a hang guard, not a speed check)
            if stream._queue.qsize() >= 2:
                break
            time.sleep(0.01)
        assert stream._queue.qsize() >= 2
        stream.cancel()
        ended = threading.Event()
        rest: list[Any] = []

        def read_rest() -> None:
            rest.extend(it)
            ended.set()

        threading.Thread(target=read_rest, daemon=True).start()
        # the iteration ends at once: no waiting delta is shown, and the server's stream is still open
        assert ended.wait(60) and not release.is_set() and rest == []
    finally:
        release.set()
    whole = list(backend.stream(ChatRequest(messages=[{"role": "user", "content": "hi"}], model="Tiny-Chat",
                                            stream=False)))
    assert "".join(d.text for d in whole) == "tiny-chat: hi" and whole[-1].usage
    with pytest.raises(ValueError, match="No-Such"):  # errors reach the caller (shown as one line)
        list(backend.stream(ChatRequest(messages=[{"role": "user", "content": "hi"}], model="No-Such")))
