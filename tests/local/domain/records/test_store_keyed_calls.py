"""The store's transactions and the keyed creates' answers (:mod:`qfnb.local.domain.records.keyed_creates`): a create
and its key are committed together or not at all, what starts work waits for the commit, the key outlives a
reopen of the file, is kept for its caller only, for a bounded time and count; a try sent while the first
runs waits for it, and one that loses the race to another process's try has its records undone."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from qfnb.local.domain.records.keyed_creates import KeyReused, run_once
from qfnb.local.domain.state.store import USAGE_FIELD, KeyTaken, Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "platform.sqlite3")


def test_a_transaction_keeps_all_of_its_writes_or_none(store: Store) -> None:
    started: list[str] = []
    with pytest.raises(RuntimeError), store.transaction():
        store.insert("datasets", {"name": "gone"})
        store.after_commit(lambda: started.append("gone"))
        raise RuntimeError("the create failed after its insert")
    with store.transaction():
        made = store.insert("datasets", {"name": "kept"})
        store.update("datasets", made["id"], importStatus=2)
        store.after_commit(lambda: started.append("kept"))
        assert started == []  # not before the commit
    assert [d["name"] for d in store.all("datasets")] == ["kept"] and started == ["kept"]
    store.after_commit(lambda: started.append("now"))  # no transaction: at once
    assert started == ["kept", "now"]


def test_a_tallied_update_inside_a_transaction_goes_with_it(store: Store) -> None:
    run = store.insert("runs", {"model": "m"})
    with pytest.raises(RuntimeError), store.transaction():
        store.update("runs", run["id"], **{USAGE_FIELD: {"m": [1, 10, 5]}})
        raise RuntimeError
    assert store.usage_totals("runs") == {}
    with store.transaction():
        store.update("runs", run["id"], **{USAGE_FIELD: {"m": [1, 10, 5]}})
    assert store.usage_totals("runs") == {"m": [1, 10, 5]}


def test_other_writers_wait_for_a_transaction_only_from_its_first_write(store: Store) -> None:
    def insert(name: str) -> threading.Thread:
        writer = threading.Thread(target=store.insert, args=("datasets", {"name": name}))
        writer.start()
        return writer

    with store.transaction():
        early = insert("before its first write")
        early.join(5)
        assert not early.is_alive()  # its checks hold nothing
        store.insert("datasets", {"name": "the create's"})
        late = insert("after its first write")
        late.join(0.3)
        assert late.is_alive()  # waits for the commit
    late.join(5)
    assert [d["name"] for d in store.all("datasets")] == ["before its first write", "the create's",
                                                          "after its first write"]


def _create(store: Store, made: list[int], name: str = "d") -> Any:
    def create() -> dict[str, Any]:
        made.append(store.insert("datasets", {"name": name})["id"])
        return {"id": made[-1]}
    return create


def test_a_key_runs_its_create_once_per_caller(store: Store) -> None:
    made: list[int] = []
    first = run_once(store, "alice", "k", "/create", {"name": "d"}, _create(store, made))
    again = run_once(store, "alice", "k", "/create", {"name": "d"}, _create(store, made))
    assert (again.answer, again.replayed, first.replayed) == (first.answer, True, False) and len(made) == 1
    other = run_once(store, "bob", "k", "/create", {"name": "d"}, _create(store, made))  # another caller
    assert not other.replayed and other.answer != first.answer and len(made) == 2
    with pytest.raises(KeyReused, match="Idempotency-Key 'k' was used for another request"):
        run_once(store, "alice", "k", "/create", {"name": "other"}, _create(store, made))
    with pytest.raises(KeyReused):
        run_once(store, "alice", "k", "/another-route", {"name": "d"}, _create(store, made))
    assert len(made) == 2 and len(store.all("datasets")) == 2


def test_a_failed_create_keeps_no_key_and_no_record(store: Store) -> None:
    def failing() -> Any:
        store.insert("datasets", {"name": "half"})
        raise ValueError("refused after its insert")

    with pytest.raises(ValueError):
        run_once(store, "alice", "k", "/create", {}, failing)
    assert store.keyed_answer("alice", "k") is None and store.all("datasets") == []
    assert not run_once(store, "alice", "k", "/create", {}, _create(store, [])).replayed


def test_a_try_sent_while_the_first_runs_gets_its_answer(store: Store) -> None:
    release, entered = threading.Event(), threading.Event()
    made: list[int] = []

    def slow() -> dict[str, Any]:
        entered.set()
        release.wait(5)
        return dict(_create(store, made)())

    answers: list[Any] = []
    first = threading.Thread(target=lambda: answers.append(run_once(store, "a", "k", "/c", {}, slow)))
    first.start()
    entered.wait(5)
    second = threading.Thread(target=lambda: answers.append(run_once(store, "a", "k", "/c", {}, slow)))
    second.start()
    second.join(0.3)
    assert second.is_alive()  # it waits for the first
    release.set()
    first.join(5)
    second.join(5)
    assert [a.replayed for a in answers] == [False, True] and answers[0].answer == answers[1].answer
    assert len(made) == 1


def test_a_try_that_loses_the_race_to_another_process_is_undone(tmp_path: Path) -> None:
    """Two stores on one file (two servers sharing a data dir): the other's try records the key while this
    one creates; this one's records are rolled back and it answers the other's answer."""
    path = tmp_path / "platform.sqlite3"
    (tmp_path / "shared").symlink_to(tmp_path)  # the other server's own name for the file
    mine, theirs = Store(path), Store(tmp_path / "shared" / "platform.sqlite3")

    def create_while_the_other_records() -> dict[str, Any]:
        run_once(theirs, "a", "k", "/c", {}, _create(theirs, [], "theirs"))
        return {"id": mine.insert("datasets", {"name": "mine"})["id"]}

    got = run_once(mine, "a", "k", "/c", {}, create_while_the_other_records)
    assert got.replayed and [d["name"] for d in mine.all("datasets")] == ["theirs"]
    assert got.answer == theirs.keyed_answer("a", "k").answer  # type: ignore[union-attr]
    with pytest.raises(KeyTaken), mine.transaction():
        mine.keep_keyed_answer("a", "k", "fp", {})


def test_a_kept_key_outlives_a_reopen_and_expires(tmp_path: Path) -> None:
    path = tmp_path / "platform.sqlite3"
    first = Store(path)
    with first.transaction():
        first.keep_keyed_answer("a", "k", "fp", {"id": 1})
    first.close()
    again = Store(path)
    assert again.keyed_answer("a", "k") is not None and again.keyed_answer("b", "k") is None
    short = Store(path, keyed_ttl=0.05)
    time.sleep(0.1)
    assert short.keyed_answer("a", "k") is None  # past its time: a call under it runs anew


def test_kept_keys_are_capped_oldest_first(tmp_path: Path) -> None:
    store = Store(tmp_path / "platform.sqlite3", keyed_max=3)
    for n in range(5):
        store.keep_keyed_answer("a", f"k{n}", "fp", n)
    assert [store.keyed_answer("a", f"k{n}") is not None for n in range(5)] == [False, False, True, True, True]
