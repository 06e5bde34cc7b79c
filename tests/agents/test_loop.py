"""qfnb.agents: tool schemas from hints and docstrings, strict argument checks, and the loop (step
cap, repeated calls, confirmation callback, summed usage) driven by a scripted model call."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import pytest
from pydantic import BaseModel

from qfnb.agents import (
    FINAL_ASK,
    ArgumentsError,
    FunctionTool,
    StepReply,
    ToolDescriptionError,
    ToolRun,
    run_tools,
)
from qfnb.agents.chat import reply_of


class Window(BaseModel):
    start: dt.date
    days: int = 1


def book(room: str, window: Window, guests: int = 1) -> dict[str, Any]:
    """Book a room for a window of days.

    Not part of the description."""
    return {"room": room, "start": window.start.isoformat(), "days": window.days, "guests": guests}


class ScriptedStep:
    """The model call as a script: each reply in turn (the last repeats); records what was sent."""

    def __init__(self, replies: list[StepReply]) -> None:
        self.replies = replies
        self.sent: list[tuple[list[dict[str, Any]], list[str]]] = []

    def __call__(self, messages: list[dict[str, Any]], tools: Sequence[FunctionTool]) -> StepReply:
        self.sent.append((messages, [t.name for t in tools]))
        return self.replies[min(len(self.sent), len(self.replies)) - 1]


USAGE = {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}


def calling(name: str, arguments: str, call_id: str = "c1") -> StepReply:
    return StepReply(calls=((name, arguments, call_id),), usage=USAGE)


def test_the_schema_comes_from_type_hints_and_the_docstrings_first_paragraph() -> None:
    tool = FunctionTool.from_function(book)
    assert tool.name == "book" and tool.description == "Book a room for a window of days."
    assert tool.parameters["required"] == ["room", "window"]
    assert tool.parameters["properties"]["guests"] == {"default": 1, "title": "Guests", "type": "integer"}
    assert tool.openai_tool() == {"type": "function", "function": tool.spec()}


def test_arguments_convert_in_strict_json_mode() -> None:
    tool = FunctionTool.from_function(book)
    out = json.loads(tool.call('{"room": "A1", "window": {"start": "2026-12-01", "days": 3}}'))
    assert out == {"room": "A1", "start": "2026-12-01", "days": 3, "guests": 1}


@pytest.mark.parametrize(("arguments", "problem"), [
    ('{"room": "A1", "window": {"start": "2026-12-01"}, "guests": "2"}', "guests: '2' is not of type 'integer'"),
    ('{"room": "A1", "window": {"start": "2026-12-01", "days": 1.5}}', "window/days: 1.5 is not of type 'integer'"),
    ('{"room": "A1", "room": "B2", "window": {"start": "2026-12-01"}}', "duplicate key 'room'"),
    ('{"room": "A1", "window": {"start": "x", "start": "2026-12-01"}}', "duplicate key 'start'"),
    ('["A1"]', "must be a JSON object, not list"),
    ('{"room": "A1",', "not JSON"),
    ('{"window": {"start": "2026-12-01"}}', "'room' is a required property"),
    ('{"room": "A1", "window": {"start": "2026-12-01"}, "floor": 3}', "floor: Extra inputs are not permitted"),
    ('{"room": "A1", "window": {"start": "December"}}', "window/start: 'December' is not a 'date'"),
])
def test_arguments_that_do_not_fit_are_refused_naming_why(arguments: str, problem: str) -> None:
    with pytest.raises(ArgumentsError, match=problem.replace("[", r"\[").replace(".", r"\.")):
        FunctionTool.from_function(book).call(arguments)


def test_a_parameter_pydantic_cannot_describe_is_refused() -> None:
    def f(*args: int) -> None:
        """Varargs."""

    with pytest.raises(ToolDescriptionError, match="f: cannot describe"):
        FunctionTool.from_function(f)


def test_the_loop_runs_the_call_and_ends_with_the_answer_summing_usage() -> None:
    step = ScriptedStep([calling("book", '{"room": "A1", "window": {"start": "2026-12-01"}}'),
                         StepReply(text="Booked A1 from 1 December.", usage=USAGE)])
    loop = run_tools("Book A1 for 1 December", [book], step=step)
    assert loop.answer == "Booked A1 from 1 December." and loop.stopped is None
    assert [(c.status, c.result) for c in loop.calls] == [
        ("ran", '{"room": "A1", "start": "2026-12-01", "days": 1, "guests": 1}')]
    assert loop.usage == {"prompt_tokens": 20, "completion_tokens": 6, "total_tokens": 26}
    second, offered = step.sent[1]
    assert offered == ["book"]
    assert second[-2]["tool_calls"][0]["id"] == "c1" and second[-1]["role"] == "tool"
    assert second[-1]["tool_call_id"] == "c1"


def test_a_repeated_call_is_not_run_again_and_the_next_request_offers_no_tools() -> None:
    ran: list[str] = []

    def weather(city: str) -> str:
        """Weather."""
        ran.append(city)
        return "17 C"

    step = ScriptedStep([calling("weather", '{"city": "Paris"}'), calling("weather", '{"city": "Paris"}', "c2"),
                         StepReply(text="17 C in Paris")])
    loop = run_tools("Weather in Paris?", [weather], step=step)
    assert ran == ["Paris"] and [c.status for c in loop.calls] == ["ran", "repeated"]
    assert [offered for _, offered in step.sent] == [["weather"], ["weather"], []]
    assert step.sent[-1][0][-1]["content"] == f"17 C\n\n{FINAL_ASK}"
    assert loop.answer == "17 C in Paris"


def test_the_step_cap_ends_honestly_when_the_model_never_answers() -> None:
    step = ScriptedStep([calling("weather", '{"city": "Paris"}'), calling("weather", '{"city": "Rome"}', "c2"),
                         StepReply(text="")])

    def weather(city: str) -> str:
        """Weather."""
        return "17 C"

    loop = run_tools("Weather?", [weather], step=step, max_steps=3)
    assert loop.done and loop.answer == "" and len(step.sent) == 3
    assert loop.stopped == "no answer after 3 model call(s): the model kept calling tools up to the step cap (3)"


def test_an_empty_answer_after_tool_results_is_asked_again_for_the_answer_without_tools() -> None:
    """The tool model chained searches, then answered with nothing while tools were still offered: the
    next request offers none and asks for the answer after the last result."""
    step = ScriptedStep([calling("weather", '{"city": "Paris"}'), StepReply(text=""), StepReply(text="17 C in Paris")])

    def weather(city: str) -> str:
        """Weather."""
        return "17 C"

    loop = run_tools("Weather?", [weather], step=step, max_steps=5)
    assert [offered for _, offered in step.sent] == [["weather"], ["weather"], []]
    assert step.sent[-1][0][-1]["content"] == f"17 C\n\n{FINAL_ASK}"
    assert loop.answer == "17 C in Paris" and loop.stopped is None and loop.steps == 3


def test_confirmation_waits_then_a_decision_resumes() -> None:
    seen: list[ToolRun] = []

    def confirm(call: ToolRun) -> Any:
        seen.append(call)
        return "wait"

    step = ScriptedStep([calling("book", '{"room": "A1", "window": {"start": "2026-12-01"}}'), StepReply(text="ok")])
    loop = run_tools("Book", [book], step=step, confirm=confirm)
    assert not loop.done and loop.pending is seen[0] and len(step.sent) == 1
    loop.decide(run=False)
    loop.advance(confirm)
    assert loop.done and loop.calls[0].status == "skipped" and loop.answer == "ok"
    assert step.sent[1][0][-1]["content"] == "the user declined to run this call"


def test_an_unknown_tool_and_a_failing_tool_answer_with_the_error() -> None:
    def boom(city: str) -> str:
        """Fails."""
        raise RuntimeError(f"no station in {city}")

    step = ScriptedStep([StepReply(calls=(("nope", "{}", "a"), ("boom", '{"city": "Oslo"}', "b"))),
                         StepReply(text="sorry")])
    loop = run_tools("x", [boom], step=step)
    assert [c.result for c in loop.calls] == ["error: no tool named 'nope'; the tools are boom",
                                              "error: RuntimeError: no station in Oslo"]
    assert [m["tool_call_id"] for m in step.sent[1][0] if m["role"] == "tool"] == ["a", "b"]


def test_an_error_from_the_model_call_ends_the_loop() -> None:
    loop = run_tools("x", [book], step=ScriptedStep([StepReply(error=RuntimeError("503"))]))
    assert loop.done and loop.answer == "" and isinstance(loop.reply.error if loop.reply else None, RuntimeError)


def test_reply_of_reads_an_openai_shaped_answer() -> None:
    body = {"choices": [{"message": {"content": None, "tool_calls": [
        {"id": "x", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}}], "usage": USAGE}
    assert reply_of(body) == StepReply(text="", calls=(("f", '{"a": 1}', "x"),), usage=USAGE)


def test_two_tools_of_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match="same name"):
        run_tools("x", [book, book], step=ScriptedStep([StepReply(text="")]))


def test_the_tool_model_is_served_exactly_when_its_packages_are_installed() -> None:
    from qfnb.local.engines import catalog
    from qfnb.local.engines.store import assets
    from qfnb.protocol.console.model_names import LOCAL_TOOL_MODEL

    asset = assets.find_asset(LOCAL_TOOL_MODEL)
    assert len(asset.parts) == 22
    assert (LOCAL_TOOL_MODEL in catalog.BUILTIN_SPECS) == assets.installed(asset)
    missing = assets.GGUFAsset("x", "x.gguf", "0" * 64, (("qfnb_no_such_package", "data/x.bin"),))
    assert not assets.installed(missing)


class ChatDouble:
    """``ChatCompletion(version=2)`` as the loop's own step sees it: the config of the platform it
    reaches, and ``do`` answering a call of the first tool, then text; records each model asked."""

    def __init__(self, *, embedded: bool, default_models: dict[str, str], **_: Any) -> None:
        from types import SimpleNamespace

        self.config = SimpleNamespace(embedded=embedded, default_models=default_models)
        self.asked: list[str | None] = []

    def do(self, *, model: str | None, messages: list[dict[str, Any]], **fields: Any) -> Any:
        from types import SimpleNamespace

        self.asked.append(model)
        if fields.get("tools") and messages[-1]["role"] == "user":
            call = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
            return SimpleNamespace(body={"choices": [{"message": {"content": None, "tool_calls": [call]}}]})
        return SimpleNamespace(body={"choices": [{"message": {"content": "12 °C in Oslo"}}]})


def weather(city: str) -> str:
    """The weather in a city."""
    return f"12 °C in {city}"


@pytest.mark.parametrize(("published", "model", "asks", "says"), [
    ({"chat": "Qwen2.5-Coder-0.5B-Instruct", "tools": "Qwen2.5-Coder-1.5B-Instruct"}, None,
     "Qwen2.5-Coder-1.5B-Instruct", "no model named: the tool model Qwen2.5-Coder-1.5B-Instruct answers"),
    ({"chat": "Qwen2.5-Coder-0.5B-Instruct"}, None, None,
     "Qwen2.5-Coder-0.5B-Instruct calls tools unreliably"),
    ({"chat": "Qwen2.5-Coder-0.5B-Instruct", "tools": "Qwen2.5-Coder-1.5B-Instruct"}, "Qwen2.5-Coder-0.5B-Instruct",
     "Qwen2.5-Coder-0.5B-Instruct", "model='Qwen2.5-Coder-1.5B-Instruct' for tool calls"),
    ({"chat": "Tiny-Chat", "tools": "Qwen2.5-Coder-1.5B-Instruct"}, "Tiny-Chat", "Tiny-Chat", None),
])
def test_run_tools_with_no_model_on_the_local_platform_asks_the_tool_model_and_says_so(
        monkeypatch: pytest.MonkeyPatch, published: dict[str, str], model: str | None, asks: str | None,
        says: str | None) -> None:
    from qfnb.agents import chat

    made: list[ChatDouble] = []
    monkeypatch.setattr(chat, "ChatCompletion", lambda **kw: made.append(ChatDouble(
        embedded=True, default_models=published)) or made[-1])
    loop = run_tools("Weather in Oslo?", [weather], model=model)
    assert loop.answer == "12 °C in Oslo" and [c.status for c in loop.calls] == ["ran"]
    assert made[0].asked == [asks, asks], "every step asks the same model"
    assert (loop.notice is None) if says is None else (says in (loop.notice or "")), loop.notice


def test_on_the_cloud_no_model_is_the_clouds_default_and_nothing_is_said() -> None:
    from qfnb.agents import chat

    assert chat.choose_model(None, embedded=False, default_models={"tools": "Qwen2.5-Coder-1.5B-Instruct"}) == (
        None, None)
    assert chat.choose_model("ernie-4.5-turbo-128k", embedded=True, default_models={}) == (
        "ernie-4.5-turbo-128k", None)
