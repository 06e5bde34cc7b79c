"""``%%qfchat -s NAME``: a conversation the platform keeps (a Responses-API chain), against the local
platform's app with engine doubles. Each cell sends only its prompt; the engine is asked the whole
conversation; a new kernel (new magics, nothing in memory) goes on with it; ``%qfchat history
NAME`` reads it from the platform; ``--reset`` / ``%qfchat reset NAME`` delete it there. The
real engine, the daemon's restarts and the browser: test_nb_browser_named_session.py."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from nb_doubles import RecordingPublisher

from qfnb.notebook.magics import QfnbMagics
from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL
from tests.fakes.local_platform import ServedPlatform


def asked(platform: ServedPlatform) -> list[str]:
    """The contents of the messages the chat engine was last asked."""
    return [m["content"] for m in platform.registry.engines["tiny-chat"].calls[-1]["messages"]]


def last_text(pub: RecordingPublisher) -> str:
    return str(pub.outputs[-1]["data"]["text/plain"])


def new_kernel(ip: InteractiveShell) -> QfnbMagics:
    """What a kernel restart leaves: fresh magics with nothing in memory."""
    magics = QfnbMagics(shell=ip)
    ip.register_magics(magics)
    return magics


def test_a_named_session_lives_on_the_platform(ip: InteractiveShell, pub: RecordingPublisher,
                                               local_platform: ServedPlatform,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    local_platform.as_default_backend(monkeypatch)
    ip.run_cell_magic("qfchat", "-s trip", "My name is Ada.")
    assert asked(local_platform) == ["My name is Ada."]
    assert "session trip · 0 turns in context" in last_text(pub) and "kept by the platform" in last_text(pub)
    ip.run_cell_magic("qfchat", "-s trip --no-stream", "What is my name?")
    assert asked(local_platform) == ["My name is Ada.", "tiny-chat: My name is Ada.", "What is my name?"]
    assert "session trip · 1 turn in context" in last_text(pub)
    ip.run_cell_magic("qfchat", "", "unrelated")  # the kernel's default session is apart
    assert asked(local_platform) == ["unrelated"]

    magics = new_kernel(ip)
    assert magics.sessions.names() == []
    ip.run_cell_magic("qfchat", "-s trip", "And again?")
    assert asked(local_platform)[-3:] == ["What is my name?", "tiny-chat: What is my name?", "And again?"]
    assert len(asked(local_platform)) == 5 and "session trip · 2 turns in context" in last_text(pub)
    history: Any = ip.run_line_magic("qfchat", "history trip")
    assert [m["content"] for m in history.session.messages] == [
        "My name is Ada.", "tiny-chat: My name is Ada.", "What is my name?", "tiny-chat: What is my name?",
        "And again?", "tiny-chat: And again?"]
    assert "What is my name?" in history._repr_html_()

    ip.run_cell_magic("qfchat", "-s trip --reset", "Start over.")
    assert asked(local_platform) == ["Start over."]
    ip.run_line_magic("qfchat", "reset trip")
    assert ip.run_line_magic("qfchat", "history trip").session.messages == []


def _steady(text: str) -> str:
    """An output without what differs between runs: timings and the replay's note."""
    return re.sub(r" · ↺ replayed turn \d+ of \S+", "", re.sub(r"\d+\.\d+ s", "<t>", text))


def test_run_all_again_replays_a_named_session_and_a_new_prompt_continues_it(
        ip: InteractiveShell, pub: RecordingPublisher, local_platform: ServedPlatform,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A notebook's session cells run twice (a new kernel each time, one platform): the second run
    replays both turns with no engine call and the same outputs; a new prompt in a new kernel
    continues the stored conversation; ``--fresh`` asks a matching turn again at its place."""
    local_platform.as_default_backend(monkeypatch)
    notebook = ["My name is Lin.", "What is my name?"]

    def run_all() -> list[str]:
        new_kernel(ip)
        outputs = []
        for prompt in notebook:
            ip.run_cell_magic("qfchat", "-s s1", prompt)
            outputs.append(last_text(pub))
        return outputs

    first = run_all()
    engine = local_platform.registry.engines["tiny-chat"]
    assert len(engine.calls) == 2 and "1 turn in context" in first[1]
    second = run_all()
    assert len(engine.calls) == 2, [c["messages"] for c in engine.calls[2:]]  # no engine call
    assert "session s1 · 0 turns in context" in second[0] and "↺ replayed turn 1 of s1" in second[0]
    assert "session s1 · 1 turn in context" in second[1] and "↺ replayed turn 2 of s1" in second[1]
    assert [_steady(t) for t in second] == [_steady(t) for t in first]
    assert len(ip.run_line_magic("qfchat", "history s1").session.messages) == 4  # nothing stored twice

    new_kernel(ip)
    ip.run_cell_magic("qfchat", "-s s1", "Where do I live?")  # a new prompt: the conversation goes on
    assert asked(local_platform) == ["My name is Lin.", "tiny-chat: My name is Lin.", "What is my name?",
                                     "tiny-chat: What is my name?", "Where do I live?"]
    assert "2 turns in context" in last_text(pub) and "replayed" not in last_text(pub)
    ip.run_cell_magic("qfchat", "-s s1", "My name is Lin.")  # once asked, the kernel goes on: no replay
    assert len(asked(local_platform)) == 7

    new_kernel(ip)
    ip.run_cell_magic("qfchat", "-s s1 --fresh", "My name is Lin.")  # asked again at its place
    assert asked(local_platform) == ["My name is Lin."] and "0 turns in context" in last_text(pub)


def test_a_named_session_keeps_a_thread_per_model(ip: InteractiveShell, pub: RecordingPublisher,
                                                  local_platform: ServedPlatform,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    local_platform.as_default_backend(monkeypatch)
    ip.run_cell_magic("qfchat", "-s trip -m Tiny-Chat", "first")
    ip.run_cell_magic("qfchat", "-s trip -m Other-Chat", "second")  # another model: a new thread, said so
    other = local_platform.registry.engines["other-chat"]
    assert [m["content"] for m in other.calls[-1]["messages"]] == ["second"]
    assert "new thread: session trip's turns were with Tiny-Chat" in last_text(pub)
    new_kernel(ip)
    ip.run_cell_magic("qfchat", "-s trip -m Tiny-Chat", "third")  # back to the first thread, from the platform
    assert asked(local_platform) == ["first", "tiny-chat: first", "third"]
    assert "back to Tiny-Chat's thread" in last_text(pub)
    ip.run_cell_magic("qfchat", "-s trip -m Other-Chat --continue", "fourth")  # the turns go on with another
    assert [m["content"] for m in other.calls[-1]["messages"]][-3:] == ["third", "tiny-chat: third", "fourth"]
    assert "carried over to Other-Chat" in last_text(pub)


def test_a_named_session_refuses_what_the_responses_api_lacks(ip: InteractiveShell, local_platform: ServedPlatform,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    local_platform.as_default_backend(monkeypatch)
    with pytest.raises(UsageError, match="--top-k cannot be used with -s trip"):
        ip.run_cell_magic("qfchat", "-s trip --top-k 5", "hello")
    engine = local_platform.registry.engines.get("tiny-chat")
    assert engine is None or engine.calls == []  # nothing was sent


@pytest.mark.real_model
def test_a_named_session_outlives_a_killed_daemon_and_a_new_kernel(  # type: ignore[no-untyped-def]
        ip: InteractiveShell, pub: RecordingPublisher, embedded, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The real engine: a fact told in one kernel, the daemon killed (SIGKILL), a new kernel asks."""
    from qfnb._core.backend import daemon
    from qfnb.local.engines.llama.process.command import find_binary

    if find_binary() is None:
        pytest.skip("llama-server is not built (scripts/bootstrap.sh)")
    data = tmp_path / "data"
    monkeypatch.setenv("QFNB_DATA_DIR", str(data))
    try:
        ip.run_cell_magic("qfchat", f"-s fruit -m {LOCAL_CHAT_MODEL} -t 0.01 --max-tokens 8",
                          "My favourite fruit is papaya. Just say OK.")
        assert "Error" not in last_text(pub), last_text(pub)
        os.kill(daemon.ensure_daemon(data).pid, signal.SIGKILL)
        new_kernel(ip)
        ip.run_cell_magic("qfchat", f"-s fruit -m {LOCAL_CHAT_MODEL} -t 0.01 --max-tokens 8",
                          "What is my favourite fruit? Answer in one word.")
        answer = last_text(pub)
        assert "papaya" in answer.split("\n-- ")[0].lower() and "1 turn in context" in answer, answer
    finally:
        daemon.stop_daemon(data, force=True, timeout=30)


def test_a_turn_left_early_closes_its_stream() -> None:
    """A cell that stops reading a named session's turn (Interrupt, an error) closes the events'
    stream at once: the platform stops generating for it."""
    from collections.abc import AsyncGenerator, AsyncIterator

    from qfnb._core.http.response import QfResponse
    from qfnb._core.runtime import sync
    from qfnb.notebook.chat.conversations import stream_turn
    from qfnb.resources.v2_client import Qianfan, Responses

    closed: list[bool] = []

    class Streamed(Responses):
        async def acreate(self, **body: Any) -> Any:
            async def events() -> AsyncIterator[QfResponse[Any]]:
                try:
                    yield QfResponse(200, {}, {"type": "response.created", "response": {"model": "m"}})
                    for word in ("one ", "two ", "three"):
                        yield QfResponse(200, {}, {"type": "response.output_text.delta", "delta": word})
                finally:
                    closed.append(True)

            return events()

    async def first_two() -> list[str]:
        turn = stream_turn(Streamed(Qianfan()), {"model": "m", "input": "hi"})
        pieces = [await anext(turn), await anext(turn)]
        assert isinstance(turn, AsyncGenerator)
        await turn.aclose()
        return [str(p.model or p.text) for p in pieces]

    assert sync.run(first_two()) == ["m", "one "] and closed == [True]
