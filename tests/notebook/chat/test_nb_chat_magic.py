"""%%qfchat in an in-process IPython shell with a fake chat backend."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from nb_doubles import FakeChatBackend, RecordingPublisher

from qfnb.notebook.chat.answer import CellAnswer
from qfnb.notebook.errors import QfnbCellError
from qfnb.notebook.sampling import SamplingOptions
from qfnb.protocol.limits import MAX_OUTPUT_TOKENS, range_problem
from qfnb.protocol.wires.chat.ranges import RANGES


def magics(ip):  # type: ignore[no-untyped-def]
    return ip.magics_manager.registry["QfnbMagics"]


def test_streams_into_one_output_updated_in_place(ip, pub: RecordingPublisher, backend: FakeChatBackend) -> None:
    backend.delay = 0.03
    magics(ip).update_interval = 0.01
    assert ip.run_cell_magic("qfchat", "", "Say hello") is None  # no Out[n] duplicate
    ids = pub.by_display_id()
    assert len(ids) == 1, "exactly one output area"
    (outputs,) = ids.values()
    assert not outputs[0]["update"] and all(o["update"] for o in outputs[1:])
    assert len(outputs) >= 3, "intermediate updates while streaming"
    partial = [o["data"]["text/html"] for o in outputs[1:-1]]
    assert any("▌" in p and "Hello <strong>world</strong>" not in p for p in partial)
    final = outputs[-1]["data"]
    assert "text/markdown" not in final  # a live output's Markdown would show its raw HTML
    assert final["text/html"].startswith('<div class="qfnb-answer"><p>Hello <strong>world</strong>')
    assert "▌" not in final["text/html"]
    assert final["text/plain"].startswith("Hello **world**\n-- default model · 12 tokens (7 prompt + 5 completion)")


def test_no_stream_flag_and_config(ip, pub: RecordingPublisher, backend: FakeChatBackend) -> None:
    ip.run_cell_magic("qfchat", "--no-stream", "hi")
    assert backend.requests[-1].stream is False
    ip.run_line_magic("config", "QfnbMagics.stream = False")
    ip.run_cell_magic("qfchat", "", "hi")
    assert backend.requests[-1].stream is False
    ip.run_line_magic("config", "QfnbMagics.stream = True")
    ip.run_cell_magic("qfchat", "", "hi")
    assert backend.requests[-1].stream is True


def test_config_traits_apply(ip, backend: FakeChatBackend) -> None:
    ip.run_line_magic("config", "QfnbMagics.default_model = 'Gemma-3-270M'")
    ip.run_line_magic("config", "QfnbMagics.temperature = 0.3")
    ip.run_cell_magic("qfchat", "", "hi")
    req = backend.requests[-1]
    assert (req.model, req.temperature) == ("Gemma-3-270M", 0.3)
    ip.run_cell_magic("qfchat", "-m Qwen2.5-Coder-0.5B-Instruct -t 0.9 --system 'be brief'", "hi")
    req = backend.requests[-1]
    assert (req.model, req.temperature, req.system) == ("Qwen2.5-Coder-0.5B-Instruct", 0.9, "be brief")
    ip.run_cell_magic("qfchat", "--max-tokens 48", "hi")
    assert backend.requests[-1].max_tokens == 48


@pytest.mark.parametrize("line", ["--max-tokens 0", f"--max-tokens {MAX_OUTPUT_TOKENS + 1}"])
def test_bad_max_tokens_rejected_before_sending(ip, backend: FakeChatBackend, line: str) -> None:
    """Both ends of the range: an oversized cap used to pass here and fail inside the answer."""
    with pytest.raises(UsageError, match=f"--max-tokens must be in \\[1, {MAX_OUTPUT_TOKENS}\\]"):
        ip.run_cell_magic("qfchat", line, "hi")
    assert backend.requests == []


def test_every_sampling_option_reaches_the_request(ip, backend: FakeChatBackend) -> None:
    ip.run_cell_magic("qfchat", "--top-p 0.5 --top-k 7 --penalty-score 1.5 --max-tokens 9 -t 0.2", "hi")
    assert backend.requests[-1].sampling == SamplingOptions(temperature=0.2, top_p=0.5, top_k=7, penalty_score=1.5,
                                                            max_output_tokens=9)
    assert backend.requests[-1].sampling.fields() == {"temperature": 0.2, "top_p": 0.5, "top_k": 7,
                                                      "penalty_score": 1.5, "max_output_tokens": 9}


@pytest.mark.parametrize(("line", "flag"), [("--top-p 1.5", "--top-p"), ("--top-k 0", "--top-k"),
                                            ("--top-k 1001", "--top-k"), ("--penalty-score 0.5", "--penalty-score")])
def test_each_sampling_range_is_the_platforms(ip, backend: FakeChatBackend, line: str, flag: str) -> None:
    field = flag.lstrip("-").replace("-", "_")
    with pytest.raises(UsageError, match=f"^{flag} must be in") as caught:
        ip.run_cell_magic("qfchat", line, "hi")
    assert backend.requests == []
    value = float(line.split()[1]) if "." in line else int(line.split()[1])
    assert str(caught.value) == f"{flag} {range_problem(value, *RANGES[field])}"  # the wire's own rule


def test_output_variable_holds_text_and_response(ip, backend: FakeChatBackend) -> None:
    ip.run_cell_magic("qfchat", "-o ans", "hi")
    ans = ip.user_ns["ans"]
    assert isinstance(ans, CellAnswer)
    assert str(ans) == ans.text == "Hello **world**"
    assert ans.response == {"result": "d**", "is_end": True}
    assert ans.usage == {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
    assert ans.latency is not None and ans.latency >= 0
    with pytest.raises(UsageError, match="-o/--output"):
        ip.run_cell_magic("qfchat", "-o 1bad", "hi")


def test_sessions_keep_history_and_reset(ip, backend: FakeChatBackend) -> None:
    ip.run_cell_magic("qfchat", "-s a", "first")
    ip.run_cell_magic("qfchat", "-s a", "second")
    ip.run_cell_magic("qfchat", "-s b", "other")
    assert [m["content"] for m in backend.requests[1].messages] == ["first", "Hello **world**", "second"]
    assert [m["role"] for m in backend.requests[1].messages] == ["user", "assistant", "user"]
    assert [m["content"] for m in backend.requests[2].messages] == ["other"]
    assert "a: 2 exchange(s)" in repr(ip.run_line_magic("qfchat", "sessions"))
    assert "user: first" in repr(ip.run_line_magic("qfchat", "history a"))
    ip.run_cell_magic("qfchat", "-s a --reset", "fresh")
    assert [m["content"] for m in backend.requests[-1].messages] == ["fresh"]
    ip.run_line_magic("qfchat", "reset")
    assert "no chat sessions" in repr(ip.run_line_magic("qfchat", "sessions"))


def test_max_history_limits_what_is_sent(ip, backend: FakeChatBackend) -> None:
    ip.run_line_magic("config", "QfnbMagics.max_history = 1")
    for p in ["one", "two", "three"]:
        ip.run_cell_magic("qfchat", "", p)
    assert [m["content"] for m in backend.requests[-1].messages] == ["two", "Hello **world**", "three"]


def test_interpolation_keeps_literal_braces(ip, backend: FakeChatBackend) -> None:
    ip.user_ns.update(name="Ada", data={"k": [1, 2]})
    cell = 'Hi {name}, item {data["k"][1]}; JSON {"a": 1} and {} and {{name}}'
    ip.run_cell_magic("qfchat", "", cell)
    assert backend.requests[-1].messages[-1]["content"] == 'Hi Ada, item 2; JSON {"a": 1} and {} and {name}'
    sent = len(backend.requests)
    with pytest.raises(UsageError, match=r"\{topic\}: no variable named 'topic'"):
        ip.run_cell_magic("qfchat", "", "Explain {topic}")
    assert len(backend.requests) == sent, "nothing is sent with an undefined placeholder"
    ip.run_cell_magic("qfchat", "--no-interp", "Hi {name}")
    assert backend.requests[-1].messages[-1]["content"] == "Hi {name}"
    ip.run_line_magic("config", "QfnbMagics.interpolate = False")
    ip.run_cell_magic("qfchat", "", "Hi {name}")
    assert backend.requests[-1].messages[-1]["content"] == "Hi {name}"


def test_line_uses_brace_safe_interpolation(ip, backend: FakeChatBackend) -> None:
    ip.user_ns.update(x="EXPANDED", ep="ep-tuned")
    ip.run_cell_magic("qfchat", '--endpoint {ep} --system "reply as {x}, JSON {\\"a\\": 1}"', "hi")
    assert backend.requests[-1].endpoint == "ep-tuned"
    assert backend.requests[-1].system == 'reply as EXPANDED, JSON {"a": 1}'
    ip.run_cell_magic("qfchat", '--no-interp --system "reply as {x}"', "hi")
    assert backend.requests[-1].system == "reply as {x}"


def test_side_by_side_models_run_concurrently(ip, pub: RecordingPublisher, backend: FakeChatBackend) -> None:
    backend.answer = {"A": "alpha answer", "B": "beta answer"}
    # both streams must be open at once to pass the barrier (run one after the other, it breaks)
    backend.together = 2
    ip.run_cell_magic("qfchat", "-m A,B -o both -s cmp", "compare")
    both = ip.user_ns["both"]
    assert {k: str(v) for k, v in both.items()} == {"A": "alpha answer", "B": "beta answer"}
    assert all(a.error is None for a in both.values())
    (outputs,) = pub.by_display_id().values()
    html = outputs[-1]["data"]["text/html"]
    assert "alpha answer" in html and "beta answer" in html and html.index("<b>A</b>") < html.index("<b>B</b>")
    assert "[A]\nalpha answer" in outputs[-1]["data"]["text/plain"]
    # each model continues its own thread of the session
    ip.run_cell_magic("qfchat", "-m A,B -s cmp", "again")
    by_model = {r.model: r for r in backend.requests[-2:]}
    assert [m["content"] for m in by_model["B"].messages] == ["compare", "beta answer", "again"]


def test_error_is_raised_not_answered(ip, pub: RecordingPublisher, backend: FakeChatBackend) -> None:
    backend.fail = {"bad": RuntimeError("API name not exist (336005)")}
    with pytest.raises(QfnbCellError, match="336005") as info:
        ip.run_cell_magic("qfchat", "-m bad -o ans", "hi")
    assert "qfchat failed" in info.value._render_traceback_()[0]
    assert isinstance(info.value.__cause__, RuntimeError)
    (outputs,) = pub.by_display_id().values()
    assert outputs[-1]["data"] == {"text/plain": ""}, "no error text masquerading as an answer"
    assert ip.magics_manager.registry["QfnbMagics"].sessions.get("default").messages == []


def test_partial_failure_in_side_by_side_is_shown_in_its_column(
    ip, pub: RecordingPublisher, backend: FakeChatBackend
) -> None:
    backend.fail = {"bad": RuntimeError("boom")}
    ip.run_cell_magic("qfchat", "-m good,bad", "hi")
    (outputs,) = pub.by_display_id().values()
    final = outputs[-1]["data"]
    assert 'class="qfnb-error"' in final["text/html"] and "RuntimeError: boom" in final["text/html"]
    assert "[error] RuntimeError: boom" in final["text/plain"]


@pytest.mark.parametrize("line", ["-t 0", "-t 1.5", "-t -1"])
def test_bad_temperature_rejected_before_sending(ip, backend: FakeChatBackend, line: str) -> None:
    with pytest.raises(UsageError, match="--temperature"):
        ip.run_cell_magic("qfchat", line, "hi")
    assert backend.requests == []


def test_empty_prompt_is_a_usage_error(ip, backend: FakeChatBackend) -> None:
    with pytest.raises(UsageError, match="prompt"):
        ip.run_cell_magic("qfchat", "", "   \n")


def test_user_text_is_escaped_in_html(ip, pub: RecordingPublisher, backend: FakeChatBackend) -> None:
    backend.answer = {"A": "<script>alert(1)</script>", "B": "ok"}
    ip.run_cell_magic("qfchat", "-m A,B", "hi")
    (outputs,) = pub.by_display_id().values()
    assert "<script>" not in outputs[-1]["data"]["text/html"]


def test_footer_names_the_default_model(ip, pub: RecordingPublisher, backend: FakeChatBackend) -> None:
    backend.default_model = lambda: "Qwen2.5-Coder-0.5B-Instruct"  # type: ignore[attr-defined]
    ip.run_cell_magic("qfchat", "", "hi")
    assert backend.requests[-1].model is None, "the platform still picks its default"
    final = pub.outputs[-1]["data"]["text/plain"]
    assert "-- Qwen2.5-Coder-0.5B-Instruct · " in final and "default model" not in final


def test_footer_names_the_session_and_its_turns_and_reset_clears_them(
        ip, pub: RecordingPublisher, backend: FakeChatBackend) -> None:
    ip.run_cell_magic("qfchat", "", "first")
    assert pub.outputs[-1]["data"]["text/plain"].endswith("session default · 0 turns in context")
    ip.run_cell_magic("qfchat", "", "second")
    assert pub.outputs[-1]["data"]["text/plain"].endswith("session default · 1 turn in context")
    assert len(backend.requests[-1].messages) == 3  # the turn the footer counts was sent
    ip.run_cell_magic("qfchat", "-s other", "elsewhere")
    assert pub.outputs[-1]["data"]["text/plain"].endswith("session other · 0 turns in context")
    ip.run_cell_magic("qfchat", "--reset", "again")
    assert pub.outputs[-1]["data"]["text/plain"].endswith("session default · 0 turns in context")
    assert len(backend.requests[-1].messages) == 1
    ip.run_line_magic("qfchat", "reset default")
    ip.run_cell_magic("qfchat", "", "fresh")
    assert pub.outputs[-1]["data"]["text/plain"].endswith("session default · 0 turns in context")
    doc = ip.magics_manager.registry["QfnbMagics"].qfchat.__doc__
    assert "session ``default``" in doc and "--reset" in doc and "%qfchat reset" in doc


def test_the_footer_says_where_it_ran(ip, pub: RecordingPublisher, backend: FakeChatBackend,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    backend.where = lambda: "cloud (QIANFAN_AK set)"  # type: ignore[attr-defined]
    ip.run_cell_magic("qfchat", "", "hi")
    assert pub.outputs[-1]["data"]["text/plain"].endswith("turns in context · cloud (QIANFAN_AK set)")


def test_the_three_magics_take_the_specs_sampling_options(ip) -> None:  # type: ignore[no-untyped-def]
    """%%qfchat, %qfeval and %qfbatch parse the same flags, with one help each, from the spec."""
    from qfnb.notebook._ipython import magic_parser
    from qfnb.notebook.sampling import OPTIONS

    batch = ip.magics_manager.registry["BatchMagics"]
    for magic in (magics(ip).qfchat, magics(ip).qfeval, batch.qfbatch):
        actions = {a.dest: a for a in magic_parser(magic)._actions}
        for option in OPTIONS:
            action = actions[option.field]
            assert (tuple(action.option_strings), action.type, action.help) == (option.flags, option.type,
                                                                                option.help)
    assert [o.flags[-1] for o in OPTIONS] == ["--temperature", "--top-p", "--top-k", "--penalty-score", "--max-tokens"]


def test_loading_the_magics_imports_no_wire_models() -> None:
    """The option checks read ``qfnb.protocol.wires.chat.ranges`` (plain data), so ``%load_ext qfnb`` stays
    as quick as before the spec: the wire models load with the first call. (pydantic itself comes
    with the trainer's configs, which the ``%qftrain`` launcher registers.)"""
    import subprocess
    import sys

    code = ("import sys, qfnb\nfrom IPython.testing.globalipapp import start_ipython\n"
            "qfnb.load_ipython_extension(start_ipython())\n"
            "print(sorted(m for m in ('qfnb.protocol.wires.qianfan.inference', 'qfnb.resources.inference')\n"
            "             if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
