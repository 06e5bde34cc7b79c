"""``%qftrace`` (issue 56): the platform's spans from the data dir's trace table, this session's or
one cell's, drawn as a waterfall in theme colours with untrusted text escaped."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from qfnb._core.record import ledger
from qfnb.local.domain.records.traces import TraceSink
from qfnb.notebook.ledger.traces import TraceMagics, TraceView, parse_line
from qfnb.protocol.platform.traces import CallSpan, new_span_id, new_trace_id


def _span(model: str, started: float, *, cell: int | None, session: str = ledger.SESSION, ttft: float | None = 0.1,
          status: int = 200) -> CallSpan:
    return CallSpan(new_trace_id(), new_span_id(), "", "chat", "/chat/completions", model, status, started, 0.4,
                    ttft, input_tokens=12, output_tokens=30, cached_tokens=8, session=session, cell=cell)


@pytest.fixture()
def traced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QFNB_DATA_DIR", str(tmp_path))
    sink = TraceSink(tmp_path, export=None)
    for i, (model, cell, session) in enumerate([("Qwen", 3, ledger.SESSION), ("Gemma", 4, ledger.SESSION),
                                                ("Other", 4, "another-kernel"), ("Qwen", 4, ledger.SESSION)]):
        sink.add(_span(model, 1000.0 + i, cell=cell, session=session))
    sink.close()
    return tmp_path


def test_the_magic_reads_this_sessions_calls_or_one_cells(traced: Path) -> None:
    magic = TraceMagics(shell=None)
    assert [s.model for s in magic.qftrace("").spans] == ["Qwen", "Gemma", "Qwen"]
    assert [s.model for s in magic.qftrace("--cell 4").spans] == ["Gemma", "Qwen"]
    assert [s.model for s in magic.qftrace("2 --all").spans] == ["Other", "Qwen"]
    assert "cell 4" in magic.qftrace("--cell 4")._repr_html_()


def test_bad_lines_name_the_problem() -> None:
    with pytest.raises(UsageError, match="--cell takes a cell's number"):
        parse_line("--cell x")
    with pytest.raises(UsageError, match="unknown option '--nope'"):
        parse_line("--nope")
    assert parse_line("5 --cell 2 --all") == parse_line("--all --cell 2 5")
    assert parse_line("5 --all   # the slow ones") == parse_line("5 --all") and parse_line("# all") == parse_line("")


def test_the_waterfall_html() -> None:
    spans = (_span("<img src=x onerror=alert(1)>", 100.0, cell=1), _span("M", 100.4, cell=2, ttft=None, status=503))
    html = TraceView(spans, "scope")._repr_html_()
    assert "<img" not in html and "&lt;img" in html  # a model name is text
    assert "12" in html and "30" in html and "400 ms" in html and "100 ms" in html and "8 cached" in html
    assert "· 503" in html and "2 calls · 24 tokens in · 60 out · over 800 ms" in html
    lefts = [float(x) for x in re.findall(r"left:([0-9.]+)%", html)]
    assert lefts == [0.0, 50.0]  # the second call starts halfway along the axis
    colours = re.findall(r"(?:color|background):([^;\"]+)", html)
    assert colours and all(c.startswith("var(--jp-") for c in colours)  # theme-aware: light and dark
    assert "no calls traced yet" in TraceView((), "x")._repr_html_()


def test_a_tool_call_and_the_call_made_inside_it() -> None:
    tool = CallSpan("a" * 32, "b" * 16, "", "execute_tool", "agent", "get_weather", 200, 100.0, 0.5, None)
    inner = CallSpan("a" * 32, "c" * 16, "b" * 16, "chat", "/chat/completions", "Qwen", 200, 100.1, 0.3, 0.1)
    item = CallSpan("d" * 32, "e" * 16, "", "evaluate", "evaluation", "tuned", 200, 101.0, 0.2, None,
                    extra='{"qfnb.eval.index": 4, "qfnb.eval.score.accuracy": 1.0}')
    html = TraceView((tool, inner, item), "scope")._repr_html_()
    assert ">execute_tool<" in html and "get_weather" in html and "↳ chat /chat/completions" in html
    assert "evaluate item 4" in html and "↳ evaluate" not in html  # a root span is not marked nested
    assert item.attributes()["qfnb.eval.score.accuracy"] == 1.0 and "http.route" not in item.attributes()
