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
import time
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from pydantic import ValidationError

from qfnb._core.config import Config
from qfnb._core.record.ledger import Ledger, UsageRow, default_ledger
from qfnb.notebook.complete import backends, handler, scope, switch
from qfnb.notebook.complete.context import FimRequest, cell_chunks, finish_suggestion, stops_for
from qfnb.notebook.complete.spending import WITHDRAWN_JOB, Limits, Spending
from qfnb.notebook.complete.wire import EditorAsk
from qfnb.protocol.platform.usage_file import kernel_session
from qfnb.protocol.wires.local.completion import COMPLETION_KIND, CompleteRequest
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


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QFNB_DATA_DIR", str(tmp_path))
    return tmp_path


def test_qfcomplete_and_qfusage_count_the_same_completions(ip: InteractiveShell, data_dir: Path,
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
                               job=COMPLETION_KIND, ts=(now - dt.timedelta(hours=hours)).timestamp()))
    ledger.record(UsageRow(api="chat", model="m", platform="local", total_tokens=9, ts=now.timestamp()))
    assert switch.spent_today(ledger, now=now) == switch.Today(1, 40)
    # completions of this notebook: a local one, a cloud one (the client's row: api chat, job completion),
    # a withdrawn one and a cache hit (no call)
    from qfnb import usage
    from qfnb._core.record.ledger import SESSION, default_ledger

    rows = [UsageRow(api=COMPLETION_KIND, model="coder", platform="local", total_tokens=30, job=COMPLETION_KIND),
            UsageRow(api="chat", model="ernie", platform="cloud", total_tokens=50, job=COMPLETION_KIND),
            UsageRow(api=COMPLETION_KIND, model="coder", platform="local", total_tokens=20, job=WITHDRAWN_JOB),
            UsageRow(api="chat", model="ernie", platform="cloud", total_tokens=50, job=COMPLETION_KIND,
                     cache_hit=True)]
    for row in rows:
        default_ledger().record(row)
    ip.run_line_magic("qfcomplete", "")
    said = capsys.readouterr().out
    by_job = usage.summary(by="job", session=SESSION)
    counted = int(by_job.loc[[j for j in by_job.index if str(j).startswith(COMPLETION_KIND)], "calls"].sum())
    assert counted == 3 and "this notebook today: 3 completions (1 withdrawn unshown), 100 tokens" in said


class _Manager:
    """A kernel manager as the handler reads one: its state and its process (no kernel runs)."""

    def __init__(self, state: str) -> None:  # (no kernel: its client() is never used)
        self.execution_state = state
        self.provisioner = type("Provisioner", (), {"pid": 4242})()

    def client(self) -> Any:
        raise AssertionError("the helper must not be sent to this kernel")


class _Kernels:
    def __init__(self, **managers: _Manager) -> None:
        self.managers = managers

    def get_kernel(self, kernel: str) -> _Manager:
        return self.managers[kernel]


class _Authorizer:
    def __init__(self, execute: bool) -> None:
        self.execute = execute
        self.asked: list[tuple[str, str]] = []

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        self.asked.append((action, resource))
        return self.execute or action != "execute"


class _Handler(handler.CompleteHandler):
    """The handler's logic without a server: its settings, kernels, user and Authorizer are plain objects."""

    def __init__(self, limits: Limits | None = None, kernels: _Kernels | None = None, user: str = "ana",
                 execute: bool = True) -> None:  # no tornado request: only the completion logic is called
        completions = handler.Completions(spending=Spending(limits or Limits()))
        self._settings: dict[str, Any] = {"qfnb_completions": completions}
        self._task = None
        self._kernels = kernels or _Kernels()
        self._current_user = user  # tornado's current_user reads it
        self._authorizer = _Authorizer(execute)

    @property
    def settings(self) -> dict[str, Any]:
        return self._settings

    @property
    def kernel_manager(self) -> Any:
        return self._kernels

    @property
    def authorizer(self) -> Any:
        return self._authorizer


def _ask(**fields: Any) -> EditorAsk:
    return EditorAsk.model_validate({"prefix": "df[", **fields})


@pytest.fixture
def coder(monkeypatch: pytest.MonkeyPatch) -> list[FimRequest]:
    """The local model, answering ``'city']`` at once; the requests it was sent."""
    asked: list[FimRequest] = []

    async def local(completion: FimRequest, model: str | None, document: str | None) -> backends.Suggestion:
        asked.append(completion)
        if "slow" in completion.prefix:
            await asyncio.sleep(30)
        return backends.Suggestion("'city']\nmore", "Fake-Coder", 30, 4, 0.01)

    monkeypatch.setattr(backends, "local", local)
    return asked


def test_the_handler_refuses_when_off_over_the_cap_or_the_rate(data_dir: Path, coder: list[FimRequest]) -> None:
    h = _Handler(Limits(daily_tokens=100_000, per_minute=4))

    def suggest(**extra: Any) -> tuple[str, str]:
        return asyncio.run(h._suggest(_ask(**extra)))

    assert suggest() == ("'city']", "Fake-Coder")
    assert suggest() == ("'city']", "cache")  # the same context: from the cache, no call
    assert len(coder) == 1
    switch.set_enabled(False)
    with pytest.raises(handler.Refused) as off:
        suggest()
    assert off.value.notice == "off" and "%qfcomplete on" in str(off.value)
    switch.set_enabled(True)
    with pytest.raises(handler.Refused) as capped:  # the page may lower the cap
        suggest(prefix="x = ", dailyTokens=10)
    assert capped.value.notice == "daily-cap"
    assert suggest(prefix="y = ", dailyTokens=10**9)[0]  # ... and asking for more changes nothing
    for n in range(2):
        suggest(prefix=f"z{n} = ")
    with pytest.raises(handler.Refused) as rate:  # 4 calls a minute for this user
        suggest(prefix="w = ")
    assert rate.value.notice == "rate"
    assert len(coder) == 4  # nothing was sent while refused


def test_the_servers_cap_cannot_be_raised_from_the_page(data_dir: Path, coder: list[FimRequest]) -> None:
    h = _Handler(Limits(daily_tokens=50))
    for asked in (None, 50, 10**9):
        with pytest.raises(handler.Refused) as capped:
            asyncio.run(h._suggest(_ask(dailyTokens=asked)))
        assert capped.value.notice == "daily-cap" and "QfnbCompletions.daily_tokens" in str(capped.value)
    assert not coder
    assert Limits.of({}, {"QFNB_COMPLETION_DAILY_TOKENS": "70"}).daily_tokens == 70
    assert Limits.of({"daily_tokens": 9}, {"QFNB_COMPLETION_DAILY_TOKENS": "70"}).daily_tokens == 9
    with pytest.raises(ValueError, match=r"QfnbCompletions\.per_minute"):
        Limits.of({}, {"QFNB_COMPLETION_PER_MINUTE": "many"})
    from traitlets.config import Config as ServerConfig

    config = ServerConfig()  # c.QfnbCompletions.daily_tokens = 5000 in jupyter_server_config.py
    config.QfnbCompletions.daily_tokens = 5000
    assert handler.limits_of(type("ServerApp", (), {"config": config})).daily_tokens == 5000


@pytest.mark.parametrize("state", ["idle", "busy"])
def test_the_notebooks_budget_holds_whether_its_kernel_is_idle_or_busy(
        state: str, data_dir: Path, coder: list[FimRequest], monkeypatch: pytest.MonkeyPatch) -> None:
    from qfnb import usage
    from qfnb._core.record import budget as budget_module
    from qfnb._core.record import ledger

    session = kernel_session("k1", 4242)
    monkeypatch.setattr(ledger, "SESSION", session)  # as the kernel computes it
    monkeypatch.setattr("qfnb.usage.SESSION", session)
    usage.budget(tokens=200)  # %qfusage --budget 200tokens in the kernel: written in the ledger
    budget_module.clear_budget()  # the server is another process: no budget of its own
    h = _Handler(kernels=_Kernels(k1=_Manager(state)))  # its helper answers nothing either way
    asyncio.run(h._suggest(_ask(kernel="k1", prefix="a = ")))
    rows = default_ledger().rows(session=session)
    assert rows and rows[-1].job == COMPLETION_KIND  # written under the notebook's kernel session
    default_ledger().record(UsageRow(api="chat", model="m", platform="local", total_tokens=150, session=session))
    with pytest.raises(handler.Refused) as refused:  # 34 + 150 of 200 spent: the next may use more
        asyncio.run(h._suggest(_ask(kernel="k1", prefix="b = ")))
    assert refused.value.notice == "budget" and "%qfusage --budget" in str(refused.value)
    assert len(coder) == 1


def test_a_user_who_may_not_execute_code_gets_no_helper_run(data_dir: Path, coder: list[FimRequest],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []

    async def ask(self: Any, kernel: str, manager: Any, timeout: float = 0.0) -> scope.KernelState:
        ran.append(kernel)
        return scope.KernelState("# df: DataFrame (1 rows), columns: 'city'")

    monkeypatch.setattr(scope.Scopes, "ask", ask)
    denied = _Handler(kernels=_Kernels(k1=_Manager("idle")), execute=False)
    assert asyncio.run(denied._suggest(_ask(kernel="k1")))[0]  # a completion, without the kernel's names
    assert not ran and ("execute", "kernels") in denied.authorizer.asked
    assert all("kernel_names" not in name for name, _ in coder[-1].extra)
    allowed = _Handler(kernels=_Kernels(k1=_Manager("idle")))
    asyncio.run(allowed._suggest(_ask(kernel="k1", prefix="df2[")))
    assert ran == ["k1"] and coder[-1].extra[-1][0] == "kernel_names.py"


def test_a_late_suggestion_is_withdrawn_and_never_billed_as_shown(data_dir: Path, coder: list[FimRequest]) -> None:
    h = _Handler()
    started = time.monotonic()
    with pytest.raises(handler.Refused) as late:
        asyncio.run(h._suggest(_ask(prefix="slow = ", timeout=400)))
    assert late.value.notice == "late" and time.monotonic() - started < 5  # 0.3 s: below the editor's 0.4 s
    (row,) = default_ledger().rows()
    assert row.job == WITHDRAWN_JOB and row.prompt_tokens > 0 and row.completion_tokens == 0
    assert handler.deadline(20_000) == 15.0 and handler.context_budget(8, 2) < handler.context_budget(1, 2)


def test_only_code_cells_in_the_kernels_language_are_completed() -> None:
    assert _ask().is_code and not _ask(cellType="markdown").is_code and not _ask(language="r").is_code
    with pytest.raises(ValidationError, match="maxTokens"):
        _ask(maxTokens=0)
    with pytest.raises(ValidationError, match="dailyTokens"):
        _ask(dailyTokens=-1)


class _WarmHandler(handler.WarmHandler, _Handler):
    """The warm route's logic without a server."""


def test_a_notebook_opened_reads_its_context_ahead_on_the_local_model_only(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[FimRequest, str | None]] = []

    async def local(completion: FimRequest, model: str | None, document: str | None) -> backends.Suggestion:
        asked.append((completion, document))
        await asyncio.sleep(0.5)  # longer than a 0.4 s editor timeout's deadline: no editor waits for it
        return backends.Suggestion("x", "Fake-Coder", 40, 1, 0.01)

    monkeypatch.setattr(backends, "local", local)
    recorded: list[backends.Suggestion] = []
    monkeypatch.setattr(backends, "record_local", lambda found, session: recorded.append(found))
    h = _WarmHandler()
    body = {"cells": ["import pandas as pd", "df = pd.DataFrame()"], "path": "sales.ipynb", "maxTokens": 64,
            "timeout": 400}
    assert asyncio.run(h.warm(EditorAsk.model_validate(body))) == {"warm": True}
    ((completion, document),) = asked
    # one token, no cell text: the earlier cells fill the notebook's slot (its document key) ahead
    assert completion.max_tokens == 1 and completion.prefix == "" and document == "sales.ipynb"
    assert [name for name, _ in completion.extra] == ["cell_1.py", "cell_2.py"]
    assert len(recorded) == 1  # a model call like any other: in the ledger
    cloud = EditorAsk.model_validate({**body, "model": "cloud:ernie-4.5-turbo-128k"})
    assert asyncio.run(h.warm(cloud)) == {"warm": False, "notice": "cloud"}
    switch.set_enabled(False)
    assert asyncio.run(h.warm(EditorAsk.model_validate(body))) == {"warm": False, "notice": "off"}
    assert len(asked) == 1  # a cloud model is not warmed (it costs), nor are completions that are off


def test_a_cloud_completion_on_a_2026_account_is_recorded_as_a_completion(cloud_v2: Any, data_dir: Path) -> None:
    config = Config.from_env({}, **key_only_config(cloud_v2))
    model = sorted(cloud_v2.models)[0]
    found = asyncio.run(backends.cloud(FimRequest.of("total = ", "", ["x = 1"]), model, config))
    assert found.text and found.completion_tokens > 0
    rows = default_ledger().rows()
    assert rows and rows[-1].job == COMPLETION_KIND and rows[-1].platform != "local"
    assert cloud_v2.key not in json.dumps([r.__dict__ for r in rows])


SECRETS = ["sk-live-9f8e7d6c5b4a39281706", "hunter2-the-password", "ghp_abcdefghijklmnop1234567890",
           "tok-short-1"]


def test_no_secret_shaped_value_reaches_a_cloud_request(cloud_v2: Any, data_dir: Path) -> None:
    cells = [f'api_key = "{SECRETS[0]}"', f'db_password = "{SECRETS[1]}"',
             f'client = Client(base_url="http://x", token="{SECRETS[3]}")',
             f'headers = {{"Authorization": "{SECRETS[2]}"}}']
    names = (f"# api_key = '{SECRETS[0]}' (str)\n# db_password = '{SECRETS[1]}' (str)\n"
             "# orders: DataFrame (3 rows), columns: 'customer', 'amount'")
    completion = FimRequest.of(f'secret_token = "{SECRETS[3]}"\nuse = ', "", cells, names).redacted()
    config = Config.from_env({}, **key_only_config(cloud_v2))
    asyncio.run(backends.cloud(completion, sorted(cloud_v2.models)[0], config))
    sent = b"".join(r.raw for r in cloud_v2.requests)
    assert b"orders: DataFrame" in sent and b"api_key" in sent  # the context went, names and all
    for secret in SECRETS:
        assert secret.encode() not in sent


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
    assert "@qfnb/inline-completer" in bundle and "registerInlineProvider" in bundle
    assert '"qfnb","inline-completions"]' in bundle and '"stream"' in bundle and '"warm"' in bundle
    assert "isIncomplete" in bundle  # the suggestion is streamed


def test_a_yuan_budget_covers_cloud_completions(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qfnb import usage
    from qfnb._core.record import budget as budget_module

    sent: list[str] = []

    async def cloud(completion: FimRequest, model: str, config: Config | None = None) -> backends.Suggestion:
        sent.append(model)
        return backends.Suggestion("'city']", model, 900, 4, 0.01)

    monkeypatch.setattr(backends, "cloud", cloud)
    session = kernel_session("k1", 4242)
    monkeypatch.setattr("qfnb.usage.SESSION", session)
    usage.budget(yuan=0.0001)  # ¥0.0001 in the notebook's kernel: less than one cloud completion costs
    budget_module.clear_budget()  # (the server's own process has none)
    h = _Handler(kernels=_Kernels(k1=_Manager("busy")))
    with pytest.raises(handler.Refused) as refused:
        asyncio.run(h._suggest(_ask(kernel="k1", model="cloud:ernie-4.5-turbo-128k", prefix="a = " + "x " * 200)))
    assert refused.value.notice == "budget" and "¥" in str(refused.value)
    with pytest.raises(handler.Refused) as unpriced:  # no price: it cannot be held to a ¥ budget
        asyncio.run(h._suggest(_ask(kernel="k1", model="cloud:no-such-model", prefix="b = ")))
    assert unpriced.value.notice == "unpriced"
    usage.budget(yuan=1.0)
    assert asyncio.run(h._suggest(_ask(kernel="k1", model="cloud:ernie-4.5-turbo-128k", prefix="c = ")))[0]
    assert sent == ["ernie-4.5-turbo-128k"]  # only the one within the budget was sent
    usage.clear_budget()
