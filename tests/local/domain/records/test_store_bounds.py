"""The probe's store finding: stored chat completions and responses had no cap and no retention, and
each list call read every record under the store's lock (30,000 records: ``GET ?limit=1`` took 2.35 s
and 690 MiB). Now a list call reads one page by SQL (checked by the memory it takes with 30,000
records of 2 KB each), and each store keeps the last ``QFNB_STORE_MAX_RECORDS`` records, none
older than ``QFNB_STORE_RETENTION_DAYS``."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import pytest

from qfnb.local.domain.records import chat_completions, responses
from qfnb.local.domain.state.store import Kept, Store
from qfnb.local.settings import Settings

RECORDS = 30_000


def _fill(store: Store, kind: str, count: int, make: object) -> None:
    """``count`` records inserted straight into the table (the fast way in; the code's insert trims)."""
    rows = [(f"{'chatcmpl-' if kind == 'chat_completions' else 'resp_'}{i:06d}", time.time(),
             json.dumps(make(i))) for i in range(count)]  # type: ignore[operator]
    with store._lock:
        store._db.executemany(f"INSERT INTO {kind} (sid, created, data) VALUES (?, ?, ?)", rows)


def _completion(i: int) -> dict[str, object]:
    return {"completion": {"id": f"chatcmpl-{i:06d}", "model": "tiny-chat" if i % 2 else "other-chat",
                           "metadata": {"batch": str(i % 3), "odd key \"q\".x": "yes" if i == 7 else "no"},
                           "choices": [{"message": {"content": "x" * 2000}}]}, "messages": []}


def _response(i: int) -> dict[str, object]:
    return {"response": {"id": f"resp_{i:06d}", "metadata": {"session": "s" if i % 1000 == 0 else "t"},
                         "output": [{"type": "message", "content": [{"text": "y" * 2000}]}]}, "input_items": []}


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = Store(tmp_path_factory.mktemp("store") / "platform.sqlite3")
    _fill(store, "chat_completions", RECORDS, _completion)
    _fill(store, "responses", RECORDS, _response)
    return store


def _peak_mib(call: object) -> tuple[object, float]:
    tracemalloc.start()
    try:
        result = call()  # type: ignore[operator]
        return result, tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_a_list_call_reads_a_page_not_the_store(full: Store) -> None:
    page, peak = _peak_mib(lambda: chat_completions.listed(full, metadata={}, limit=1))
    assert [c["id"] for c in page["data"]] == ["chatcmpl-000000"] and page["has_more"] is True  # type: ignore[index]
    assert peak < 5, f"{peak:.1f} MiB for one record of 30,000 (the whole store is 60 MB)"
    newest, _ = _peak_mib(lambda: chat_completions.listed(full, metadata={}, limit=2, order="desc"))
    assert [c["id"] for c in newest["data"]] == ["chatcmpl-029999", "chatcmpl-029998"]  # type: ignore[index]
    after = chat_completions.listed(full, metadata={}, limit=2, order="desc", after="chatcmpl-029998")
    assert [c["id"] for c in after["data"]] == ["chatcmpl-029997", "chatcmpl-029996"]
    assert chat_completions.listed(full, metadata={}, after="chatcmpl-nope")["data"] == []  # as before: no such id


def test_filters_are_read_by_sql_and_page_too(full: Store) -> None:
    filtered, peak = _peak_mib(lambda: chat_completions.listed(full, metadata={"batch": "2"}, model="TINY-CHAT",
                                                               limit=3))
    assert [c["id"] for c in filtered["data"]] == ["chatcmpl-000005", "chatcmpl-000011", "chatcmpl-000017"]  # type: ignore[index]
    assert peak < 5
    odd = chat_completions.listed(full, metadata={"odd key \"q\".x": "yes"})  # any key, quoted or dotted
    assert [c["id"] for c in odd["data"]] == ["chatcmpl-000007"] and odd["has_more"] is False
    assert chat_completions.listed(full, metadata={"batch": "2') OR 1=1 --"})["data"] == []
    sessions, peak = _peak_mib(lambda: responses.listed(full, {"session": "s"}, limit=100))
    assert [r["id"] for r in sessions["data"]][:2] == ["resp_029000", "resp_028000"]  # type: ignore[index]
    assert len(sessions["data"]) == 30 and peak < 5  # type: ignore[index]


def test_each_store_keeps_its_cap_and_its_retention(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "platform.sqlite3", kept={"chat_completions": Kept(5, 3600.0)})
    for i in range(8):
        chat_completions.save(store, {"id": f"chatcmpl-{i}", "model": "m"}, {"messages": []})
    kept = chat_completions.listed(store, metadata={}, limit=100)["data"]
    assert [c["id"] for c in kept] == [f"chatcmpl-{i}" for i in range(3, 8)]  # the last five
    monkeypatch.setattr(time, "time", lambda: 1e12)  # far past every record's hour
    chat_completions.save(store, {"id": "chatcmpl-new", "model": "m"}, {"messages": []})
    assert [c["id"] for c in chat_completions.listed(store, metadata={}, limit=100)["data"]] == ["chatcmpl-new"]
    responses.save(store, {"id": "resp_a", "output": []}, [])  # a kind not bounded here is not trimmed
    assert store.get("responses", "resp_a") is not None
    store.close()
    monkeypatch.setattr(time, "time", lambda: 1e12 + 10)
    again = Store(tmp_path / "platform.sqlite3", kept={"chat_completions": Kept(5, 1.0)})  # trimmed as it opens
    assert again.get("chat_completions", "chatcmpl-new") is None


def test_the_bounds_are_settings_named_when_wrong(tmp_path: Path) -> None:
    settings = Settings.from_env(tmp_path, env={"QFNB_STORE_MAX_RECORDS": "50", "QFNB_STORE_RETENTION_DAYS": "0.5"})
    assert (settings.store_max_records, settings.store_retention_days) == (50, 0.5)
    assert Settings.from_env(tmp_path, env={}).store_max_records == 10_000
    with pytest.raises(ValueError, match="QFNB_STORE_MAX_RECORDS must be a whole number >= 1"):
        Settings.from_env(tmp_path, env={"QFNB_STORE_MAX_RECORDS": "0"})
    with pytest.raises(ValueError, match="QFNB_STORE_RETENTION_DAYS must be a number of days >= 0"):
        Settings.from_env(tmp_path, env={"QFNB_STORE_RETENTION_DAYS": "-1"})
