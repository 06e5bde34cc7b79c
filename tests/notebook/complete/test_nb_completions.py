"""Inline completions' notebook side, without a browser: the context a completion is asked with (the
earlier cells within a token budget, most recent first; where a suggestion stops), the kernel helper
run as a silent user expression in a real IPython shell (a DataFrame's columns, a function's
signature, nothing left in the user's namespace, the budget read and charged), ``%qfcomplete`` and
the day's spending; the Jupyter server handler's refusals (off, the daily cap, the notebook's budget)
and its cache; the cloud path on the 2026 cloud double (recorded under the completion kind)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from qfnb._core.config import Config
from qfnb._core.record.ledger import Ledger, UsageRow, default_ledger
from qfnb.notebook.complete import backends, handler, scope, switch
from qfnb.notebook.complete.context import FimRequest, cell_chunks, finish_suggestion, stops_for
from qfnb.protocol.wires.completion import COMPLETION_KIND, CompleteRequest
from tests.fakes.fixtures_v2 import key_only_config


def test_earlier_cells_most_recent_first_within_the_budget() -> None:
    cells = ["a = 1", "%%qfchat\nprose, not code", "b = 2", "", "c = a + b"]
    assert cell_chunks(cells) == [("cell_1.py", "a = 1\n"), ("cell_3.py", "b = 2\n"), ("cell_5.py", "c = a + b\n")]
    long = "x = " + "1 + " * 400 + "1"
    assert cell_chunks(["a = 1", long, "c = 3"], budget=100) == [("cell_3.py", "c = 3\n")]
    done = FimRequest.of("p" * 9000, "s" * 3000, ["a = 1"], "# df: DataFrame (1 rows), columns: 'x'")
    assert len(done.prefix) == 4000 and len(done.suffix) == 1500
    assert done.extra[-1][0] == "kernel_names.py"  # the kernel's names sit nearest the cursor
    CompleteRequest.model_validate(done.body("Fake-Coder", "nb.ipynb"))  # the daemon's body shape
    assert done.key("m") != FimRequest.of("p" * 9000, "s" * 3000).key("m")


def test_a_suggestion_stops_at_the_line_or_the_block() -> None:
    assert stops_for("x = df[") == ("\n", "```")
    assert stops_for("def f(x):") == ("\n\n", "```") and stops_for("for i in y:\n    ") == ("\n\n", "```")
    assert finish_suggestion("print(best)\n```", "x = 1\n", "") == "print(best)"  # no Markdown fence
    assert finish_suggestion('print("top", top)', "x = 1\nprint", "") == '("top", top)'  # the line written again
    assert finish_suggestion("'city']\nprint(1)", "df[", "") == "'city']"
    assert finish_suggestion("'city']", "df[", "]") == "'city'"  # the ] after the cursor is not doubled
    assert finish_suggestion("return x\n\ny = 2", "def f(x):\n    ", "") == "return x"


@pytest.fixture
def shell() -> Any:
    shell = InteractiveShell.instance()
    yield shell
    InteractiveShell.clear_instance()


def test_the_kernel_helper_lists_columns_and_signatures_and_leaves_nothing(shell: InteractiveShell) -> None:
    shell.run_cell("import pandas as pd\ndf = pd.DataFrame({'city': ['Oslo'], 'sales': [3]})\n"
                   "def load(path: str, sep: str = ',') -> int:\n    return 0\nrate = 0.25")
    before = set(shell.user_ns)
    state = scope.parse_reply({"user_expressions": shell.user_expressions({"qfnb": scope.expression()})})
    assert state is not None
    assert "# df: DataFrame (1 rows), columns: 'city', 'sales'" in state.names
    assert "# def load(path: str, sep: str = ',') -> int" in state.names and "# rate = 0.25 (float)" in state.names
    assert "# pd" not in state.names  # modules are left out
    assert set(shell.user_ns) == before
    assert scope.parse_reply({"user_expressions": {"qfnb": {"status": "error"}}}) is None


def test_the_helper_reads_and_charges_the_notebooks_budget(shell: InteractiveShell) -> None:
    from qfnb import usage

    usage.budget(tokens=1000)
    try:
        reply = shell.user_expressions({"qfnb": scope.expression(charge=300)})
        state = scope.parse_reply({"user_expressions": reply})
        assert state is not None and state.tokens_left == 700 and state.session
        budget = usage.active_budget()
        assert budget is not None and budget.spent_tokens == 300
    finally:
        usage.clear_budget()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QFNB_DATA_DIR", str(tmp_path))
    return tmp_path


def test_qfcomplete_switches_the_server_and_says_what_today_used(ip: InteractiveShell, data_dir: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert switch.enabled()
    ip.run_line_magic("qfcomplete", "off")
    assert not switch.enabled() and "inline completions: off" in capsys.readouterr().out
    ip.run_line_magic("qfcomplete", "on")
    assert switch.enabled()
    with pytest.raises(UsageError, match="on or off"):
        ip.run_line_magic("qfcomplete", "maybe")
    ledger = Ledger(data_dir / "day.sqlite3")
    now = dt.datetime(2026, 11, 26, 15, 0)
    for hours, tokens in ((1, 40), (20, 500)):  # one today, one yesterday
        ledger.record(UsageRow(api=COMPLETION_KIND, model="m", platform="local", total_tokens=tokens,
                               ts=(now - dt.timedelta(hours=hours)).timestamp()))
    ledger.record(UsageRow(api="chat", model="m", platform="local", total_tokens=9, ts=now.timestamp()))
    assert switch.spent_today(ledger, now=now) == switch.Today(1, 40)


class _Handler(handler.CompleteHandler):
    """The handler's logic without a server: its settings and kernel manager are plain objects."""

    def __init__(self) -> None:  # no tornado request: only the completion logic is called
        self._settings: dict[str, Any] = {}
        self._task = None

    @property
    def settings(self) -> dict[str, Any]:
        return self._settings

    @property
    def kernel_manager(self) -> Any:
        raise AssertionError("no kernel in these tests")


def test_the_handler_refuses_when_off_over_the_cap_or_the_budget(data_dir: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[FimRequest] = []

    async def local(completion: FimRequest, model: str | None, document: str | None) -> backends.Suggestion:
        asked.append(completion)
        return backends.Suggestion("'city']\nmore", "Fake-Coder", 30, 4, 0.01)

    monkeypatch.setattr(backends, "local", local)
    monkeypatch.setattr(backends, "record_local", lambda found, session: None)
    h = _Handler()
    body = {"dailyTokens": 100_000}

    def suggest(**extra: Any) -> tuple[str, str]:
        return asyncio.run(h._suggest({**body, **extra}, "df[", "", [], ""))

    assert suggest() == ("'city']", "Fake-Coder")
    assert suggest() == ("'city']", "cache")  # the same context: from the cache, no call
    assert len(asked) == 1
    switch.set_enabled(False)
    with pytest.raises(handler.Refused) as off:
        suggest()
    assert off.value.notice == "off" and "%qfcomplete on" in str(off.value)
    switch.set_enabled(True)
    with pytest.raises(handler.Refused) as capped:
        asyncio.run(h._suggest({"dailyTokens": 10}, "x = ", "", [], ""))
    assert capped.value.notice == "daily-cap"
    h.completions.states["k1"] = (3, scope.KernelState("", "s1", tokens_left=20))
    with pytest.raises(handler.Refused) as budget:
        asyncio.run(h._suggest({"kernel": "k1", "executionCount": 3}, "y = ", "", [], ""))
    assert budget.value.notice == "budget" and "%qfusage --budget" in str(budget.value)
    assert len(asked) == 1  # nothing was sent while refused


class _WarmHandler(handler.WarmHandler, _Handler):
    """The warm route's logic without a server."""


def test_a_notebook_opened_reads_its_context_ahead_on_the_local_model_only(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[FimRequest, str | None]] = []

    async def local(completion: FimRequest, model: str | None, document: str | None) -> backends.Suggestion:
        asked.append((completion, document))
        return backends.Suggestion("x", "Fake-Coder", 40, 1, 0.01)

    monkeypatch.setattr(backends, "local", local)
    recorded: list[backends.Suggestion] = []
    monkeypatch.setattr(backends, "record_local", lambda found, session: recorded.append(found))
    h = _WarmHandler()
    body = {"cells": ["import pandas as pd", "df = pd.DataFrame()"], "path": "sales.ipynb", "maxTokens": 64}
    assert asyncio.run(h.warm(body)) == {"warm": True}
    ((completion, document),) = asked
    # one token, no cell text: the earlier cells fill the notebook's slot (its document key) ahead
    assert completion.max_tokens == 1 and completion.prefix == "" and document == "sales.ipynb"
    assert [name for name, _ in completion.extra] == ["cell_1.py", "cell_2.py"]
    assert len(recorded) == 1  # a model call like any other: in the ledger
    assert asyncio.run(h.warm({**body, "model": "cloud:ernie-4.5-turbo-128k"})) == {"warm": False, "notice": "cloud"}
    switch.set_enabled(False)
    assert asyncio.run(h.warm(body)) == {"warm": False, "notice": "off"}
    assert len(asked) == 1  # a cloud model is not warmed (it costs), nor are completions that are off


def test_a_cloud_completion_on_a_2026_account_is_recorded_as_a_completion(cloud_v2: Any, data_dir: Path) -> None:
    config = Config.from_env({}, **key_only_config(cloud_v2))
    model = sorted(cloud_v2.models)[0]
    found = asyncio.run(backends.cloud(FimRequest.of("total = ", "", ["x = 1"]), model, config))
    assert found.text and found.completion_tokens > 0
    rows = default_ledger().rows()
    assert rows and rows[-1].job == COMPLETION_KIND and rows[-1].platform != "local"
    assert cloud_v2.key not in json.dumps([r.__dict__ for r in rows])


def test_a_wheel_enables_the_server_extension_and_the_build_holds_the_provider() -> None:
    import tomllib

    import qfnb.notebook.complete as complete

    root = Path(__file__).parents[3]
    files = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    config = files["etc/jupyter/jupyter_server_config.d"]
    assert config == ["jupyter-config/jupyter_server_config.d/qfnb.json"]
    enabled = json.loads((root / config[0]).read_text())["ServerApp"]["jpserver_extensions"]
    assert enabled == {"qfnb.notebook.complete": True}
    assert complete._jupyter_server_extension_points() == [{"module": "qfnb.notebook.complete"}]
    # the committed build is of this source: the provider and the server route it asks
    bundle = "".join(p.read_text() for p in (root / "qfnb" / "notebook" / "labextension" / "static").glob("*.js"))
    assert "@qfnb/inline-completer" in bundle and "registerInlineProvider" in bundle and '"qfnb","complete"' in bundle
    assert '"qfnb","complete","warm"' in bundle
