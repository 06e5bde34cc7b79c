"""A ``%%qfchat --tools`` cell's tool turns stay in its session (issue 58): later cells send the
assistant's ``tool_calls``, the ``tool`` results and the answer back, in order and in whole
exchanges, so the model sees earlier questions answered by calling the tool."""

from __future__ import annotations

import json
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from nb_doubles import RecordingPublisher, ScriptedChatBackend, function_call

from qfnb.notebook.chat.sessions import ChatSession, Exchange, SessionHistory, fitted
from qfnb.protocol.wires.chat.tools import openai_history_as_v1
from qfnb.protocol.wires.qianfan.inference import validate_messages
from tests.fakes.cloud import PREFIX, Captured

RESULT = {"city": "Paris", "temp_c": 17}


def weather(city: str) -> str:
    """Current weather for a city."""
    return json.dumps({**RESULT, "city": city})


def magics(ip: InteractiveShell) -> Any:
    return ip.magics_manager.registry["QfnbMagics"]


@pytest.fixture
def scripted(ip: InteractiveShell) -> ScriptedChatBackend:
    """The model: calls weather(Paris) then answers; calls weather(Rome) then answers; then says "ok"."""
    double = ScriptedChatBackend([function_call("weather", city="Paris"), {"result": "17 C in Paris."},
                                  function_call("weather", city="Rome"), {"result": "17 C in Rome."},
                                  {"result": "ok"}])
    magics(ip).chat_backend = double
    ip.user_ns["weather"] = weather
    return double


def assert_valid_on_the_wire(messages: list[dict[str, Any]]) -> None:
    """Every ``tool`` turn answers a call of the assistant turn before its run of results, and the
    history is a valid v1 chat once in the backend's form."""
    calls: set[str] = set()
    for m in messages:
        if m.get("tool_calls"):
            calls = {c["id"] for c in m["tool_calls"]}
        elif m["role"] == "tool":
            assert m["tool_call_id"] in calls, f"a tool turn without its call: {m}"
        else:
            calls = set()
    validate_messages(openai_history_as_v1(messages))


def roles(messages: list[dict[str, Any]]) -> list[str]:
    return [m["role"] + ("+calls" if m.get("tool_calls") else "") for m in messages]


def test_a_tool_cell_asks_its_question_alone_by_default_and_the_session_keeps_every_turn(
        ip: InteractiveShell, pub: RecordingPublisher, scripted: ScriptedChatBackend) -> None:
    ip.run_cell_magic("qfchat", "--tools weather --yes", "Weather in Paris?")
    ip.run_cell_magic("qfchat", "--tools weather --yes", "And in Rome?")
    assert scripted.requests[2].messages == [{"role": "user", "content": "And in Rome?"}]
    footer = pub.outputs[-1]["data"]["text/plain"]
    assert "session default · 0 turns in context · asked alone" in footer and "tool_history = N" in footer
    kept = magics(ip).sessions.get("default").messages
    assert roles(kept) == ["user", "assistant+calls", "tool", "assistant"] * 2
    assert kept[5]["tool_calls"][0]["function"]["arguments"] == '{"city": "Rome"}'
    assert "default: 2 exchange(s)" in repr(ip.run_line_magic("qfchat", "sessions"))


def test_a_second_tool_cell_sends_the_first_cells_calls_results_and_answer_in_order(
        ip: InteractiveShell, pub: RecordingPublisher, scripted: ScriptedChatBackend) -> None:
    ip.run_line_magic("config", "QfnbMagics.tool_history = 5")
    ip.run_cell_magic("qfchat", "--tools weather --yes", "Weather in Paris?")
    ip.run_cell_magic("qfchat", "--tools weather --yes -o a", "And in Rome?")
    first_ask = scripted.requests[2].messages  # the second cell's first model call
    assert roles(first_ask) == ["user", "assistant+calls", "tool", "assistant", "user"]
    assert first_ask[0]["content"] == "Weather in Paris?" and first_ask[-1]["content"] == "And in Rome?"
    assert first_ask[1]["tool_calls"][0]["function"] == {"name": "weather", "arguments": '{"city": "Paris"}'}
    assert json.loads(first_ask[2]["content"]) == RESULT
    assert first_ask[3] == {"role": "assistant", "content": "17 C in Paris."}
    assert_valid_on_the_wire(first_ask)
    assert_valid_on_the_wire(scripted.requests[3].messages)  # the loop's own turns after the history
    assert str(ip.user_ns["a"]) == "17 C in Rome."
    assert "session default · 1 turn in context · 1 tool call(s)" in pub.outputs[-1]["data"]["text/plain"]
    assert "default: 2 exchange(s)" in repr(ip.run_line_magic("qfchat", "sessions"))


def test_a_plain_cell_after_a_tool_cell_sends_the_tool_turns(ip: InteractiveShell,
                                                             scripted: ScriptedChatBackend) -> None:
    scripted.bodies[2] = {"result": "It is 17 C."}
    ip.run_cell_magic("qfchat", "--tools weather --yes -m m1", "Weather in Paris?")
    ip.run_cell_magic("qfchat", "-m m1", "Thanks. Say it again?")
    sent = scripted.requests[-1].messages
    assert roles(sent) == ["user", "assistant+calls", "tool", "assistant", "user"]
    assert "functions" not in scripted.requests[-1].body, "a plain cell offers no tools"
    assert_valid_on_the_wire(sent)
    shown = repr(ip.run_line_magic("qfchat", "history"))
    assert 'assistant: → weather({"city": "Paris"})' in shown and 'tool weather: {"city": "Paris"' in shown
    assert shown.endswith("user: Thanks. Say it again?\nassistant: It is 17 C.")


def test_max_history_counts_exchanges_and_never_cuts_one(ip: InteractiveShell, scripted: ScriptedChatBackend) -> None:
    ip.run_line_magic("config", "QfnbMagics.max_history = 1")
    ip.run_cell_magic("qfchat", "--tools weather --yes", "Weather in Paris?")
    ip.run_cell_magic("qfchat", "--tools weather --yes", "And in Rome?")
    ip.run_cell_magic("qfchat", "", "Which was warmer?")
    sent = scripted.requests[-1].messages
    assert [m.get("content") for m in sent if m["role"] == "user"] == ["And in Rome?", "Which was warmer?"]
    assert roles(sent) == ["user", "assistant+calls", "tool", "assistant", "user"]
    assert_valid_on_the_wire(sent)


def test_reset_forgets_the_tool_turns(ip: InteractiveShell, scripted: ScriptedChatBackend) -> None:
    ip.run_line_magic("config", "QfnbMagics.tool_history = 5")
    ip.run_cell_magic("qfchat", "--tools weather --yes", "Weather in Paris?")
    ip.run_cell_magic("qfchat", "--tools weather --yes --reset", "And in Rome?")
    assert [m["content"] for m in scripted.requests[2].messages] == ["And in Rome?"]
    ip.run_line_magic("qfchat", "reset")
    ip.run_cell_magic("qfchat", "", "hi")
    assert [m["content"] for m in scripted.requests[-1].messages] == ["hi"]


def test_a_named_kernel_session_keeps_the_tool_turns_apart(ip: InteractiveShell,
                                                           scripted: ScriptedChatBackend) -> None:
    ip.run_line_magic("config", "QfnbMagics.tool_history = 5")
    ip.run_cell_magic("qfchat", "--tools weather --yes -s trip", "Weather in Paris?")
    ip.run_cell_magic("qfchat", "--tools weather --yes", "And in Rome?")
    assert [m["content"] for m in scripted.requests[2].messages] == ["And in Rome?"], "default is another session"
    assert len(magics(ip).sessions.get("trip").exchanges[0].messages) == 4
    ip.run_cell_magic("qfchat", "--tools weather --yes -s trip", "And in Bern?")
    assert roles(scripted.requests[-1].messages) == ["user", "assistant+calls", "tool", "assistant", "user"]


def test_big_tool_results_drop_whole_old_exchanges_first(ip: InteractiveShell, pub: RecordingPublisher,
                                                         scripted: ScriptedChatBackend) -> None:
    big = "x" * 9000

    def weather(city: str) -> str:
        """Current weather for a city."""
        return big if city == "Paris" else "17 C"

    ip.user_ns["weather"] = weather
    ip.run_line_magic("config", "QfnbMagics.history_chars = 4000")
    ip.run_cell_magic("qfchat", "--tools weather --yes", "Weather in Paris?")
    ip.run_cell_magic("qfchat", "--tools weather --yes", "And in Rome?")
    ip.run_cell_magic("qfchat", "", "Which was warmer?")
    sent = scripted.requests[-1].messages
    assert [m.get("content") for m in sent if m["role"] == "user"] == ["And in Rome?", "Which was warmer?"]
    assert all(big not in str(m.get("content")) for m in sent)
    assert_valid_on_the_wire(sent)
    assert pub.outputs[-1]["data"]["text/plain"].endswith("session default · 1 turn in context")
    kept = magics(ip).sessions.get("default").exchanges[0].messages[2]
    assert kept["content"] == big, "the session keeps the result as the model saw it"
    ip.run_line_magic("config", "QfnbMagics.history_chars = 0")  # no limit: both exchanges go
    ip.run_cell_magic("qfchat", "", "Again?")
    assert len([m for m in scripted.requests[-1].messages if m["role"] == "user"]) == 4


def test_fitting_keeps_the_newest_exchanges_that_fit() -> None:
    small, large = Exchange.of("q", "a"), Exchange.of("q", "a", [{"role": "tool", "content": "y" * 100}])
    assert fitted([large, small, small], 5, max_chars=10) == [small, small]
    assert fitted([small, large, small], 5, max_chars=10) == [small], "never past an exchange that does not fit"
    assert fitted([small, small, small], 2) == [small, small]
    assert fitted([small], 0) == []
    assert fitted([large], 5, max_chars=10) == [], "one exchange too big for the budget is left out whole"


def test_a_platform_transcript_splits_into_exchanges_at_each_user_turn() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    flat = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "name": "f", "content": "<b>r</b>"},
            {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"},
            {"role": "assistant", "content": "a2"}]
    session = ChatSession.from_messages("s", flat)
    assert [len(e.messages) for e in session.exchanges] == [4, 2] and session.messages == flat
    html = SessionHistory(session)._repr_html_()
    assert "<b>r</b>" not in html and "&lt;b&gt;r&lt;/b&gt;" in html and "→ f({})" in html


@pytest.mark.sockets
def test_a_plain_cell_after_a_tool_cell_is_a_valid_v1_chat_on_the_wire(
        ip: InteractiveShell, cloud_env: Any) -> None:
    """Through qfnb's client to the fake cloud: the history's tool turns go as v1 ``function_call``
    and ``function`` turns, which the cloud takes with no ``functions`` offered."""
    seen: list[Captured] = []

    def chat(req: Captured) -> dict[str, Any]:
        seen.append(req)
        body = req.json or {}
        usage = {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
        validate_messages(body["messages"])
        if body.get("functions") and body["messages"][-1]["role"] == "user":
            return {"id": "as-1", "object": "chat.completion", "result": "", "usage": usage,
                    "function_call": {"name": "weather", "arguments": '{"city": "Paris"}', "thoughts": ""}}
        return {"id": "as-2", "object": "chat.completion", "result": f"turn {len(seen)}", "usage": usage}

    cloud_env.route("POST", f"{PREFIX}/chat/completions")(chat)
    ip.user_ns["weather"] = weather
    ip.run_cell_magic("qfchat", "-m ERNIE-Bot --tools weather --yes --fresh", "Weather in Paris?")
    ip.run_cell_magic("qfchat", "-m ERNIE-Bot --fresh -o a", "Thanks!")
    sent = (seen[-1].json or {})["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "function", "assistant", "user"]
    assert sent[1]["function_call"]["name"] == "weather" and sent[2]["name"] == "weather"
    assert "functions" not in (seen[-1].json or {})
    assert str(ip.user_ns["a"]) == "turn 3"
