"""``%%qfchat`` history is per session and model (issue 43): a different ``-m`` on a session with
turns starts a new thread and says so, instead of sending one model's conversation to another;
switching back resumes the first thread; ``--continue`` carries the turns over."""

from __future__ import annotations

from IPython.core.interactiveshell import InteractiveShell
from nb_doubles import FakeChatBackend, RecordingPublisher


def _sent(backend: FakeChatBackend) -> list[str]:
    return [m["content"] for m in backend.requests[-1].messages]


def test_switching_models_starts_a_thread_and_continue_carries_it(ip: InteractiveShell, pub: RecordingPublisher,
                                                                  backend: FakeChatBackend) -> None:
    ip.run_cell_magic("qfchat", "-m Qwen", "Triage this ticket as JSON")
    ip.run_cell_magic("qfchat", "-m Qwen", "And the priority?")
    assert _sent(backend) == ["Triage this ticket as JSON", "Hello **world**", "And the priority?"]
    ip.run_cell_magic("qfchat", "-m ERNIE", "Write a haiku")
    assert _sent(backend) == ["Write a haiku"], "Qwen's thread is not sent to ERNIE"
    footer = pub.outputs[-1]["data"]["text/plain"]
    assert "⚠ new thread: session default's turns were with Qwen, not sent to ERNIE (--continue sends them)" in footer
    assert "new thread" in pub.outputs[-1]["data"]["text/html"]
    ip.run_cell_magic("qfchat", "-m Qwen", "Back to the ticket")
    assert _sent(backend)[:4] == ["Triage this ticket as JSON", "Hello **world**", "And the priority?",
                                  "Hello **world**"] and _sent(backend)[-1] == "Back to the ticket"
    assert "⚠ session default: back to Qwen's thread (ERNIE's turns not sent" in pub.outputs[-1]["data"]["text/plain"]
    ip.run_cell_magic("qfchat", "-m ERNIE --continue", "Summarise our talk")
    assert _sent(backend)[0] == "Triage this ticket as JSON" and _sent(backend)[-1] == "Summarise our talk"
    assert "carried over to ERNIE" in pub.outputs[-1]["data"]["text/plain"]
    history = ip.run_line_magic("qfchat", "history")
    assert "Summarise our talk" in repr(history)


def test_a_named_session_and_side_by_side_keep_their_own_threads(ip: InteractiveShell,
                                                                 backend: FakeChatBackend) -> None:
    ip.run_cell_magic("qfchat", "-s a -m Qwen", "one")
    ip.run_cell_magic("qfchat", "-s b -m ERNIE", "two")
    assert _sent(backend) == ["two"]
    ip.run_cell_magic("qfchat", "-s a -m Qwen", "three")
    assert _sent(backend) == ["one", "Hello **world**", "three"]
    ip.run_cell_magic("qfchat", "-s a --reset -m ERNIE", "four")
    assert _sent(backend) == ["four"]


def test_the_same_model_by_default_is_one_thread(ip: InteractiveShell, backend: FakeChatBackend,
                                                 pub: RecordingPublisher) -> None:
    ip.run_cell_magic("qfchat", "", "one")
    ip.run_cell_magic("qfchat", "", "two")
    assert _sent(backend) == ["one", "Hello **world**", "two"]
    assert "new thread" not in pub.outputs[-1]["data"]["text/plain"]

