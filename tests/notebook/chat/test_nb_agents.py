"""%%qfchat --json / --schema / --tools, and batch answers as a DataFrame, against engine doubles."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
from IPython.core.error import UsageError
from nb_doubles import FakeChatBackend, RecordingPublisher, ScriptedChatBackend, function_call
from pydantic import BaseModel

from qfnb.agents import FINAL_ASK
from qfnb.notebook.errors import QfnbCellError, QfnbInterrupted
from qfnb.resources.structured import SchemaError, answer_schema, response_format, results_df


class Ticket(BaseModel):
    label: Literal["bug", "feature", "question"]
    summary: str


TICKET_SCHEMA = {"type": "object", "properties": {"label": {"enum": ["bug", "feature"]}, "summary": {"type": "string"}},
                 "required": ["label", "summary"], "additionalProperties": False}


def magics(ip):  # type: ignore[no-untyped-def]
    return ip.magics_manager.registry["QfnbMagics"]


# ---------------------------------------------------------------------------- --json / --schema
def test_json_sends_json_object_and_o_holds_the_dict(ip, backend: FakeChatBackend) -> None:
    backend.answer = '{"city": "Paris", "n": 2}'
    ip.run_cell_magic("qfchat", "--json -o obj", "Give me a city as JSON")
    assert backend.requests[-1].body == {"response_format": {"type": "json_object"}}
    assert ip.user_ns["obj"] == {"city": "Paris", "n": 2}


def test_json_answer_that_is_not_an_object_is_a_cell_error(ip, backend: FakeChatBackend) -> None:
    backend.answer = "[1, 2]"
    with pytest.raises(QfnbCellError, match="JSON but not an object"):
        ip.run_cell_magic("qfchat", "--json -o obj", "hi")
    assert "obj" not in ip.user_ns


def test_schema_pydantic_model_gives_the_instance(ip, backend: FakeChatBackend) -> None:
    ip.user_ns["Ticket"] = Ticket
    backend.answer = '{"label": "bug", "summary": "crash on start"}'
    ip.run_cell_magic("qfchat", "--schema Ticket -o t", "Classify: the app crashes")
    fmt = backend.requests[-1].body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["name"] == "Ticket"
    assert fmt["json_schema"]["schema"]["properties"]["label"]["enum"] == ["bug", "feature", "question"]
    assert ip.user_ns["t"] == Ticket(label="bug", summary="crash on start")


def test_schema_dict_is_validated_with_jsonschema(ip, backend: FakeChatBackend) -> None:
    ip.user_ns["ticket"] = TICKET_SCHEMA
    backend.answer = '{"label": "feature", "summary": "dark mode"}'
    ip.run_cell_magic("qfchat", "--schema ticket -o t", "hi")
    assert backend.requests[-1].body["response_format"]["json_schema"]["schema"] == TICKET_SCHEMA
    assert ip.user_ns["t"] == {"label": "feature", "summary": "dark mode"}
    backend.answer = '{"label": "question", "summary": "?"}'
    with pytest.raises(QfnbCellError, match="does not match ticket at label"):
        ip.run_cell_magic("qfchat", "--schema ticket -o t2", "hi")
    assert "t2" not in ip.user_ns


@pytest.mark.parametrize(("setup", "line", "message"), [
    ({}, "--schema Missing", "no variable 'Missing'"),
    ({"n": 3}, "--schema n", "n is a int, not a pydantic model class or a JSON-schema dict"),
    ({"bad": {"type": "object", "properties": 5}}, "--schema bad", "bad is not a valid JSON schema"),
    ({"arr": {"type": "array"}}, "--schema arr", "must describe an object"),
    ({"Ticket": Ticket}, "--json --schema Ticket", "--json and --schema both given"),
])
def test_bad_schema_refused_before_sending(ip, backend: FakeChatBackend, setup: dict[str, Any], line: str,
                                           message: str) -> None:
    ip.user_ns.update(setup)
    with pytest.raises(UsageError, match=message):
        ip.run_cell_magic("qfchat", line, "hi")
    assert backend.requests == []


def test_schema_side_by_side_gives_one_object_per_model(ip, backend: FakeChatBackend) -> None:
    ip.user_ns["Ticket"] = Ticket
    backend.answer = {"a": '{"label": "bug", "summary": "x"}', "b": '{"label": "question", "summary": "y"}'}
    ip.run_cell_magic("qfchat", "--schema Ticket -m a,b -o t", "hi")
    assert ip.user_ns["t"] == {"a": Ticket(label="bug", summary="x"), "b": Ticket(label="question", summary="y")}


# ---------------------------------------------------------------------------- batch -> DataFrame
class _Resp:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body


def test_results_df_one_column_per_field_and_an_error_column() -> None:
    results = [_Resp({"result": '{"label": "bug", "summary": "crash"}'}),
               _Resp({"choices": [{"message": {"content": '{"label": "feature", "summary": "dark"}'}}]}),
               _Resp({"result": '{"label": "nope", "summary": "x"}'}),
               RuntimeError("429 too many requests"),
               _Resp({"result": "not json"})]
    df = results_df(results, Ticket)
    assert list(df.columns) == ["label", "summary", "error"]
    assert df["label"].tolist()[:2] == ["bug", "feature"] and df["error"][:2].isna().all()
    assert "does not match Ticket" in df["error"][2] and df["label"].isna()[2]
    assert df["error"][3] == "RuntimeError: 429 too many requests"
    assert "not JSON" in df["error"][4]
    df2 = results_df(results[:3], TICKET_SCHEMA)
    assert df2["label"][:2].tolist() == ["bug", "feature"] and df2["label"].isna()[2]


def test_response_format_of_a_model_and_a_bad_schema() -> None:
    assert response_format(Ticket)["json_schema"]["name"] == "Ticket"
    assert answer_schema(response_format(TICKET_SCHEMA)).schema == TICKET_SCHEMA  # a response_format round-trips
    with pytest.raises(SchemaError, match="not a pydantic model class"):
        response_format("Ticket")


def test_batch_do_with_response_format_lands_in_a_dataframe(monkeypatch: pytest.MonkeyPatch) -> None:
    """ChatCompletion.batch_do sends the schema on every row; the answers become columns."""
    from qfnb.resources import ChatCompletion

    sent: list[dict[str, Any]] = []

    async def fake_ado(self: Any, **kwargs: Any) -> Any:
        sent.append(kwargs)
        text = kwargs["messages"][0]["content"]
        if "broken" in text:
            return _Resp({"result": '{"label": "bug"}'})
        return _Resp({"result": json.dumps({"label": "bug" if "crash" in text else "feature", "summary": text})})

    monkeypatch.setattr(ChatCompletion, "ado", fake_ado)
    prompts = [[{"role": "user", "content": p}] for p in ("crash on save", "add dark mode", "broken row")]
    future = ChatCompletion(model="Qwen2.5-Coder-0.5B-Instruct").batch_do(
        prompts, response_format=response_format(Ticket), worker_num=2)
    df = future.to_dataframe(Ticket)
    assert all(k["response_format"]["json_schema"]["name"] == "Ticket" for k in sent) and len(sent) == 3
    assert df["label"][:2].tolist() == ["bug", "feature"] and df["label"].isna()[2]
    assert df["summary"][1] == "add dark mode"
    assert "summary" in df["error"][2] and df["error"][:2].isna().all()


# ---------------------------------------------------------------------------- --tools
def weather(city: str, days: int = 1) -> dict[str, Any]:
    """Current weather for a city.

    More words that are not the description."""
    return {"city": city, "temp_c": 17, "days": days}


call = function_call
ToolBackend = ScriptedChatBackend


@pytest.fixture
def tools_backend(ip):  # type: ignore[no-untyped-def]
    double = ToolBackend([call("weather", city="Paris"), {"result": "It is 17 °C in Paris."}])
    magics(ip).chat_backend = double
    ip.user_ns["weather"] = weather
    return double


def test_tools_yes_runs_the_call_and_loops_to_the_answer(ip, pub: RecordingPublisher,
                                                         tools_backend: ToolBackend) -> None:
    ip.run_cell_magic("qfchat", "--tools weather --yes -o ans", "Weather in Paris?")
    first, second = tools_backend.requests
    (spec,) = first.body["functions"]
    assert spec == {"name": "weather", "description": "Current weather for a city.",
                    "parameters": {"type": "object", "required": ["city"],
                                   "properties": {"city": {"title": "City", "type": "string"},
                                                  "days": {"default": 1, "title": "Days", "type": "integer"}}}}
    assert first.stream is False
    assert second.messages[-2] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]}
    assert second.messages[-1] == {"role": "tool", "tool_call_id": "call_1", "name": "weather",
                                   "content": '{"city": "Paris", "temp_c": 17, "days": 1}'}
    assert str(ip.user_ns["ans"]) == "It is 17 °C in Paris."
    (outputs,) = pub.by_display_id().values()
    final = outputs[-1]["data"]["text/plain"]
    assert '[1] ✓ weather({"city": "Paris"}) → {"city": "Paris", "temp_c": 17, "days": 1}' in final
    assert "It is 17 °C in Paris." in final and "1 tool call(s), 2 step(s)" in final


def test_a_tool_error_goes_back_as_the_result(ip, tools_backend: ToolBackend) -> None:
    def boom(city: str) -> str:
        """Always fails."""
        raise RuntimeError(f"no station in {city}")

    ip.user_ns["weather"] = boom
    boom.__name__ = "weather"
    ip.run_cell_magic("qfchat", "--tools weather --yes", "hi")
    assert tools_backend.requests[1].messages[-1]["content"] == "error: RuntimeError: no station in Paris"


def test_bad_arguments_are_an_error_result_not_a_crash(ip, tools_backend: ToolBackend) -> None:
    tools_backend.bodies[0] = call("weather", town="Paris")
    ip.run_cell_magic("qfchat", "--tools weather --yes", "hi")
    result = tools_backend.requests[1].messages[-1]["content"]
    assert result.startswith("error: arguments refused") and "'city' is a required property" in result


def test_arguments_of_the_wrong_type_are_refused_not_coerced(ip, tools_backend: ToolBackend) -> None:
    ran: list[Any] = []

    def set_count(n: int) -> str:
        """Set the count."""
        ran.append(n)
        return "ok"

    ip.user_ns["set_count"] = set_count
    tools_backend.bodies[0] = call("set_count", n="7")
    ip.run_cell_magic("qfchat", "--tools set_count --yes", "hi")
    assert ran == [], "lax validation ran set_count(7) for {'n': '7'}"
    result = tools_backend.requests[1].messages[-1]["content"]
    assert result == "error: arguments refused: n: '7' is not of type 'integer'"


def test_duplicate_keys_are_refused_and_the_tool_does_not_run(ip, tools_backend: ToolBackend) -> None:
    ran: list[str] = []

    def weather(city: str) -> str:
        """Weather."""
        ran.append(city)
        return "17 C"

    ip.user_ns["weather"] = weather
    tools_backend.bodies[0] = {"result": "", "function_call": {"name": "weather",
                                                               "arguments": '{"city": "Paris", "city": "Rome"}'}}
    ip.run_cell_magic("qfchat", "--tools weather --yes", "hi")
    assert ran == []
    result = tools_backend.requests[1].messages[-1]["content"]
    assert result == "error: arguments refused: duplicate key 'city' in the arguments"


def test_the_footer_sums_every_step(ip, pub: RecordingPublisher, tools_backend: ToolBackend) -> None:
    tools_backend.bodies = [call("weather", city="Paris"), call("weather", city="Rome"), {"result": "mild"}]
    ip.run_cell_magic("qfchat", "--tools weather --yes -o a", "hi")
    (outputs,) = pub.by_display_id().values()
    final = outputs[-1]["data"]["text/plain"]
    assert "27 tokens (15 prompt + 12 completion)" in final and "3 step(s)" in final  # 3 requests of 9 tokens
    assert ip.user_ns["a"].usage == {"prompt_tokens": 15, "completion_tokens": 12, "total_tokens": 27}


def test_no_answer_at_the_step_cap_says_so(ip, pub: RecordingPublisher, tools_backend: ToolBackend) -> None:
    tools_backend.bodies = [call("weather", city="Paris"), {"result": ""}]
    ip.run_cell_magic("qfchat", "--tools weather --yes --max-steps 2", "hi")
    (outputs,) = pub.by_display_id().values()
    assert ("[stopped] no answer after 2 model call(s): the model kept calling tools up to the step cap (2)"
            in outputs[-1]["data"]["text/plain"])


def test_step_cap_leaves_the_functions_out_of_the_last_request(ip, tools_backend: ToolBackend) -> None:
    tools_backend.bodies = [call("weather", city="Paris"), call("weather", city="Rome"), {"result": "done"}]
    ip.run_cell_magic("qfchat", "--tools weather --yes --max-steps 2 -o a", "hi")
    assert ["functions" in r.body for r in tools_backend.requests] == [True, False]
    assert len(tools_backend.requests) == 2


def test_a_repeated_call_is_not_run_again(ip, tools_backend: ToolBackend) -> None:
    ran: list[str] = []

    def weather(city: str) -> str:
        """Weather."""
        ran.append(city)
        return "17 C"

    ip.user_ns["weather"] = weather
    tools_backend.bodies = [call("weather", city="Paris"), call("weather", city="Paris"), {"result": "17 C in Paris"}]
    ip.run_cell_magic("qfchat", "--tools weather --yes -o a", "hi")
    assert ran == ["Paris"]
    assert ["functions" in r.body for r in tools_backend.requests] == [True, True, False]
    assert [r.system for r in tools_backend.requests] == [None, None, None]
    last = tools_backend.requests[-1].messages  # the result asks for the answer; the shown result does not
    assert last[-1] == {"role": "tool", "tool_call_id": "call_1", "name": "weather", "content": f"17 C\n\n{FINAL_ASK}"}
    assert tools_backend.requests[1].messages[-1]["content"] == "17 C"
    assert str(ip.user_ns["a"]) == "17 C in Paris"


@pytest.mark.parametrize(("setup", "line", "message"), [
    ({}, "--tools nothere", "no function 'nothere'"),
    ({"x": 3}, "--tools x", "a int, not a function"),
    ({"weather": weather}, "--tools weather --max-steps 0", "--max-steps must be at least 1"),
    ({"weather": weather}, "--tools weather --json", "leave out --json/--schema"),
    ({"weather": weather}, "--tools weather -m a,b", "one model"),
])
def test_bad_tools_refused_before_sending(ip, setup: dict[str, Any], line: str, message: str) -> None:
    double = ToolBackend([{"result": "x"}])
    magics(ip).chat_backend = double
    ip.user_ns.update(setup)
    with pytest.raises(UsageError, match=message):
        ip.run_cell_magic("qfchat", line, "hi")
    assert double.requests == []


def _view(pub: RecordingPublisher) -> Any:
    from ipywidgets.widgets.widget import _instances

    for outputs in pub.by_display_id().values():
        model_id = outputs[-1]["data"].get("application/vnd.jupyter.widget-view+json", {}).get("model_id")
        if model_id:
            return _instances[model_id]
    raise AssertionError("no widget displayed")


def test_confirmation_waits_for_run_then_goes_on(ip, pub: RecordingPublisher, tools_backend: ToolBackend) -> None:
    ran: list[str] = []

    def weather(city: str) -> str:
        """Weather."""
        ran.append(city)
        return "17 C"

    ip.user_ns["weather"] = weather
    ip.run_cell_magic("qfchat", "--tools weather -o a", "Weather in Paris?")
    assert len(tools_backend.requests) == 1 and ran == [], "nothing runs before the click"
    box = _view(pub)
    pane, row = box.children
    question, run, _skip = row.children
    assert 'weather({"city": "Paris"})' in question.value and row.layout.display is None
    assert "waiting for Run or Skip" in pane.value
    run.click()
    assert ran == ["Paris"] and len(tools_backend.requests) == 2
    assert row.layout.display == "none" and "It is 17 °C in Paris." in pane.value
    assert str(ip.user_ns["a"]) == "It is 17 °C in Paris."


def test_skip_tells_the_model_the_call_was_declined(ip, pub: RecordingPublisher, tools_backend: ToolBackend) -> None:
    ip.run_cell_magic("qfchat", "--tools weather", "hi")
    _view(pub).children[1].children[2].click()
    assert tools_backend.requests[1].messages[-1] == {"role": "tool", "tool_call_id": "call_1", "name": "weather",
                                                      "content": "the user declined to run this call"}
    assert "· skipped" in _view(pub).children[0].value


def test_interrupt_in_a_tool_stops_the_loop(ip, tools_backend: ToolBackend) -> None:
    def weather(city: str) -> str:
        """Weather."""
        raise KeyboardInterrupt

    ip.user_ns["weather"] = weather
    with pytest.raises(QfnbInterrupted, match="stopped after 1 step"):
        ip.run_cell_magic("qfchat", "--tools weather --yes", "hi")
    assert len(tools_backend.requests) == 1


def test_with_no_model_named_the_loop_takes_the_tool_model_when_the_platform_lists_it(
        ip, tools_backend: ToolBackend) -> None:
    from qfnb.notebook.models.discovery import ModelList, ModelRow
    from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL, LOCAL_TOOL_MODEL

    m = magics(ip)
    m.names.set(ModelList([ModelRow("chat", LOCAL_CHAT_MODEL, "x", default=True)], "test"))
    ip.run_cell_magic("qfchat", "--tools weather --yes -o a", "hi")
    assert tools_backend.requests[0].model is None, "not listed: the platform's default"
    assert "picked for tools" not in ip.user_ns["a"].footer
    m.names.set(ModelList([ModelRow("chat", LOCAL_CHAT_MODEL, "x", default=True),
                           ModelRow("chat", LOCAL_TOOL_MODEL, "y")], "test"))
    ip.run_cell_magic("qfchat", "--tools weather --yes -o a", "hi")
    assert tools_backend.requests[-1].model == LOCAL_TOOL_MODEL
    footer = ip.user_ns["a"].footer
    assert footer.startswith(LOCAL_TOOL_MODEL) and "the tool model, picked for tools (-m NAME picks another)" in footer
    ip.run_cell_magic("qfchat", f"--tools weather --yes -m {LOCAL_CHAT_MODEL}", "hi")
    assert tools_backend.requests[-1].model == LOCAL_CHAT_MODEL, "-m wins"


def test_a_model_that_calls_tools_unreliably_is_said_once_with_where_the_tool_model_is(
        ip, tools_backend: ToolBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    from qfnb.notebook.chat import tools as nb_tools
    from qfnb.notebook.models.discovery import ModelList, ModelRow
    from qfnb.protocol.console.model_names import LOCAL_CHAT_MODEL, LOCAL_TOOL_MODEL, TOOL_MODEL_INSTALL

    monkeypatch.setattr(nb_tools, "_SAID_UNRELIABLE", set())
    m = magics(ip)
    m.names.set(ModelList([ModelRow("chat", LOCAL_CHAT_MODEL, "x", default=True)], "test"))
    ip.run_cell_magic("qfchat", f"--tools weather --yes -m {LOCAL_CHAT_MODEL} -o a", "hi")
    said = f"{LOCAL_CHAT_MODEL} calls tools unreliably"
    assert said in ip.user_ns["a"].footer and TOOL_MODEL_INSTALL in ip.user_ns["a"].footer
    ip.run_cell_magic("qfchat", f"--tools weather --yes -m {LOCAL_CHAT_MODEL} -o a", "hi")
    assert said not in ip.user_ns["a"].footer, "said once per kernel"
    monkeypatch.setattr(nb_tools, "_SAID_UNRELIABLE", set())
    m.names.set(ModelList([ModelRow("chat", LOCAL_CHAT_MODEL, "x", default=True),
                           ModelRow("chat", LOCAL_TOOL_MODEL, "y")], "test"))
    ip.run_cell_magic("qfchat", f"--tools weather --yes -m {LOCAL_CHAT_MODEL} -o a", "hi")
    assert f"-m {LOCAL_TOOL_MODEL} for tool calls" in ip.user_ns["a"].footer


MCP_SERVER = '''
from mcp.server.mcpserver import MCPServer

server = MCPServer("adder")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


server.run("stdio")
'''


def test_mcp_tools_are_offered_confirmed_and_run_like_notebook_functions(
        ip, pub: RecordingPublisher, tools_backend: ToolBackend, tmp_path: Any) -> None:
    pytest.importorskip("mcp")
    import sys

    from qfnb.notebook.chat import tools as chat_tools

    script = tmp_path / "adder.py"
    script.write_text(MCP_SERVER)
    tools_backend.bodies = [call("add", a=2, b=40), {"result": "2 + 40 = 42"}]
    try:
        ip.run_cell_magic("qfchat", f'--mcp "{sys.executable} {script}" -o a', "Add 2 and 40")
        (spec,) = tools_backend.requests[0].body["functions"]
        assert spec["name"] == "add" and spec["description"] == "Add two integers."
        assert spec["parameters"]["required"] == ["a", "b"]
        box = _view(pub)
        assert 'add({"a": 2, "b": 40})' in box.children[1].children[0].value, "asked first"
        assert len(tools_backend.requests) == 1
        box.children[1].children[1].click()  # Run
        assert tools_backend.requests[1].messages[-1] == {"role": "tool", "tool_call_id": "call_1", "name": "add",
                                                          "content": "42"}
        assert str(ip.user_ns["a"]) == "2 + 40 = 42"
    finally:
        chat_tools._close_mcp_servers()


def test_an_mcp_server_that_cannot_start_is_refused_before_sending(ip, tools_backend: ToolBackend) -> None:
    pytest.importorskip("mcp")
    with pytest.raises(UsageError, match="--mcp qfnb-no-such-command: MCP server 'qfnb-no-such-command': cannot"):
        ip.run_cell_magic("qfchat", "--mcp qfnb-no-such-command", "hi")
    assert tools_backend.requests == []


def test_a_bad_mcp_timeout_is_refused_before_anything_starts(ip, backend: FakeChatBackend) -> None:
    with pytest.raises(UsageError, match="--mcp-timeout must be a positive number of seconds, not 0"):
        ip.run_cell_magic("qfchat", '--mcp "never-started-server" --mcp-timeout 0', "hi")
    assert backend.requests == []
