"""``%qfcache`` and ``%qfusage`` in a shell with the extension loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import qfnb
from qfnb import usage
from qfnb._core.record import cache as cache_mod
from qfnb._core.record import ledger as ledger_mod
from qfnb.notebook.usage import cached_badge, parse_budget

MSG = [{"role": "user", "content": "hello"}]


@pytest.fixture
def fake_in_process() -> bool:
    return True


@pytest.fixture(autouse=True)
def _own_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QFNB_DATA_DIR", str(tmp_path / "data"))
    cache_mod._default.clear()
    ledger_mod._default.clear()
    usage.clear_budget()


def test_loading_the_extension_turns_the_cache_on_and_qfcache_off_turns_it_off(
        ip: InteractiveShell, fake: Any, make_config: Any) -> None:
    assert usage.cache() == "on"
    chat = qfnb.ChatCompletion(config=make_config())
    chat.do(messages=MSG)
    again = chat.do(messages=MSG)
    assert again.provenance["cache"]["hit"] is True and len(fake.calls("/chat/")) == 1
    ip.run_line_magic("qfcache", "off")
    chat.do(messages=MSG)
    assert len(fake.calls("/chat/")) == 2
    ip.run_line_magic("qfcache", "on")
    ip.run_line_magic("qfcache", "clear")
    chat.do(messages=MSG)
    assert len(fake.calls("/chat/")) == 3
    with pytest.raises(UsageError, match="on, off, clear or stats"):
        ip.run_line_magic("qfcache", "sometimes")


def test_qfusage_groups_this_sessions_calls_with_their_cell(ip: InteractiveShell, fake: Any,
                                                            make_config: Any) -> None:
    ip.user_ns["chat"] = qfnb.ChatCompletion(config=make_config())
    ip.run_cell("r1 = chat.do(messages=[{'role': 'user', 'content': 'one'}])", store_history=True)
    ip.run_cell("r2 = chat.do(messages=[{'role': 'user', 'content': 'two'}])\n"
                "r3 = chat.do(messages=[{'role': 'user', 'content': 'two'}])", store_history=True)
    by_cell = ip.run_line_magic("qfusage", "--by cell")
    assert list(by_cell["calls"]) == [1, 2]
    assert list(by_cell["cache_hits"]) == [0, 1]
    total = sum(ip.user_ns[r]["usage"]["total_tokens"] for r in ("r1", "r2", "r3"))
    assert by_cell["total_tokens"].sum() == total
    assert by_cell["saved_tokens"].sum() == ip.user_ns["r3"]["usage"]["total_tokens"]


def test_qfusage_budget_and_its_spellings(ip: InteractiveShell) -> None:
    assert parse_budget("¥5") == {"yuan": 5.0}
    assert parse_budget("2.5yuan") == {"yuan": 2.5}
    assert parse_budget("20000 tokens") == {"tokens": 20000}
    ip.run_line_magic("qfusage", "--budget 1000tokens")
    assert usage.active_budget() is not None and usage.active_budget().tokens == 1000  # type: ignore[union-attr]
    ip.run_line_magic("qfusage", "--budget off")
    assert usage.active_budget() is None
    with pytest.raises(UsageError, match="--budget"):
        ip.run_line_magic("qfusage", "--budget lots")


def test_the_cached_badge_says_how_old_and_how_to_ask_again() -> None:
    assert "3 min ago" in cached_badge(180) and "--fresh" in cached_badge(180)
    assert "12 s ago" in cached_badge(12)
    assert "2 h ago" in cached_badge(7200)
