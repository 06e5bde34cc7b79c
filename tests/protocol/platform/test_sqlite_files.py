"""The one way the data dir's SQLite files are opened (``qfnb.protocol.platform.sqlite_files``), and the
files that open through it: the usage ledger, the response cache, the trace table (the client's
spans and the platform's sink) and the platform's store."""

from __future__ import annotations

import contextlib
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from qfnb._core.record.cache import ResponseCache
from qfnb._core.record.ledger import Ledger, UsageRow
from qfnb._core.record.traces import read_spans, write_spans
from qfnb.local.domain.records.traces import TraceSink
from qfnb.local.domain.state.store import Store
from qfnb.protocol.platform.sqlite_files import LazyDb, open_db, select, transaction
from qfnb.protocol.platform.traces import TRACES_FILE, CallSpan, new_span_id, new_trace_id

SCHEMA = "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY);"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _old_file(path: Path, statements: tuple[str, ...]) -> Path:
    """A file as an earlier version of qfnb wrote it (``statements``: its tables and rows)."""
    with contextlib.closing(sqlite3.connect(path)) as old:
        for statement in statements:
            old.execute(statement)
        old.commit()
    return path


def _span(model: str) -> CallSpan:
    return CallSpan(trace_id=new_trace_id(), span_id=new_span_id(), parent_id="", operation="chat",
                    route="/v1/chat/completions", model=model, status=200, started=1.0, duration_s=0.1,
                    ttft_s=None, session="s", cell=None, job="", extra="")


def test_open_db_creates_a_private_wal_file_with_its_schema_usable_from_another_thread(tmp_path: Path) -> None:
    path = tmp_path / "new" / "f.sqlite3"
    db = open_db(path, SCHEMA, synchronous="NORMAL")
    try:
        assert _mode(path.parent) == 0o700 and _mode(path) == 0o600
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert db.isolation_level is None  # autocommit: transactions are the writer's own
        seen: list[int] = []
        worker = threading.Thread(target=lambda: seen.append(db.execute("SELECT count(*) FROM t").fetchone()[0]))
        worker.start()
        worker.join()
        assert seen == [0]
    finally:
        db.close()
    # opening again keeps the rows (the schema script is idempotent) and takes back what others could read
    path.chmod(0o640)
    again = open_db(path, SCHEMA)
    assert _mode(path) == 0o600
    assert again.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    again.close()


def test_opening_a_file_again_keeps_the_open_connections_lock(tmp_path: Path) -> None:
    """A second ``open_db`` of a file this process has open must not drop the first connection's
    POSIX lock (a descriptor opened and closed outside SQLite did): another process, closing its
    own connection, then took itself for the last one and deleted the WAL the first still used."""
    path = tmp_path / "shared.sqlite3"
    first = open_db(path, "CREATE TABLE IF NOT EXISTS t(x INTEGER);")
    first.execute("INSERT INTO t VALUES (1)")
    open_db(path).close()  # what a second ledger, store or trace writer of this process does
    other = ("import sqlite3, sys; db = sqlite3.connect(sys.argv[1], isolation_level=None); "
             "db.execute('INSERT INTO t VALUES (2)'); db.close()")
    subprocess.run([sys.executable, "-c", other, str(path)], check=True, timeout=60)
    assert path.with_name(path.name + "-wal").exists()  # another connection (ours) is still open
    first.execute("INSERT INTO t VALUES (3)")
    assert [r[0] for r in first.execute("SELECT x FROM t ORDER BY x")] == [1, 2, 3]
    assert first.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    first.close()


def test_transaction_commits_the_block_and_rolls_back_a_failing_one(tmp_path: Path) -> None:
    db = open_db(tmp_path / "f.sqlite3", SCHEMA)
    with transaction(db):
        db.execute("INSERT INTO t VALUES ('a')")
    with pytest.raises(sqlite3.IntegrityError), transaction(db, immediate=True):
        db.execute("INSERT INTO t VALUES ('b')")
        db.execute("INSERT INTO t VALUES ('a')")  # a duplicate key: the whole block goes
    assert not db.in_transaction
    assert [r[0] for r in db.execute("SELECT k FROM t")] == ["a"]
    db.close()


def test_a_file_from_before_gains_its_new_columns_once_and_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "f.sqlite3"
    open_db(path, SCHEMA).close()
    path.chmod(0o644)
    for key in ("x", "y"):  # present the second time: nothing to add
        db = open_db(path, SCHEMA, columns={"t": {"note": "TEXT NOT NULL DEFAULT ''"}})
        assert [r[1] for r in db.execute("PRAGMA table_info(t)")] == ["k", "note"]
        db.execute("INSERT INTO t(k) VALUES (?)", (key,))
        assert _mode(path) == 0o600 and _mode(path.with_name("f.sqlite3-wal")) == 0o600
        db.close()
    db = open_db(path)
    assert db.execute("SELECT k, note FROM t ORDER BY k").fetchall() == [("x", ""), ("y", "")]
    db.close()


def test_select_keeps_the_conditions_given_and_leaves_out_the_none_ones(tmp_path: Path) -> None:
    db = open_db(tmp_path / "f.sqlite3", "CREATE TABLE IF NOT EXISTS r (ts REAL, who TEXT);")
    db.executemany("INSERT INTO r VALUES (?, ?)", [(1.0, "a"), (2.0, "b"), (3.0, "a")])
    assert select(db, "SELECT * FROM r", {"ts >=": None, "who =": None}, " ORDER BY ts") == [
        {"ts": 1.0, "who": "a"}, {"ts": 2.0, "who": "b"}, {"ts": 3.0, "who": "a"}]
    assert select(db, "SELECT ts FROM r", {"ts >=": 2.0, "who =": "a"}) == [{"ts": 3.0}]
    assert select(db, "SELECT ts FROM r", {"who =": "a"}, " ORDER BY ts DESC LIMIT ?", [1]) == [{"ts": 3.0}]
    db.close()


def test_a_lazy_db_opens_at_first_use_and_again_after_close(tmp_path: Path) -> None:
    opened: list[sqlite3.Connection] = []

    def opener() -> sqlite3.Connection:
        if not opened:
            opened.append(sqlite3.connect(":memory:"))
            raise sqlite3.OperationalError("disk I/O error")  # the first open fails: nothing is kept
        opened.append(open_db(tmp_path / "f.sqlite3", SCHEMA))
        return opened[-1]

    lazy = LazyDb(opener)
    assert not (tmp_path / "f.sqlite3").exists()
    with pytest.raises(sqlite3.OperationalError):
        lazy.conn()
    first = lazy.conn()
    assert lazy.conn() is first and len(opened) == 2
    first.execute("INSERT INTO t VALUES ('a')")
    lazy.close()
    lazy.close()  # closing twice is fine
    assert lazy.conn() is not first and len(opened) == 3
    assert lazy.conn().execute("SELECT k FROM t").fetchall() == [("a",)]
    lazy.close()


def test_the_ledger_reads_an_old_file_and_keeps_its_rows(tmp_path: Path) -> None:
    """A ledger file written before ``asked``/``end_user`` existed gains them; its rows stay."""
    path = _old_file(tmp_path / "usage.sqlite3", (
        "CREATE TABLE calls (ts REAL NOT NULL, session TEXT NOT NULL, cell INTEGER, job TEXT, api TEXT NOT NULL, "
        "model TEXT NOT NULL, platform TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER "
        "NOT NULL, total_tokens INTEGER NOT NULL, latency_s REAL NOT NULL, retries INTEGER NOT NULL, cache_hit "
        "INTEGER NOT NULL, trained_tokens INTEGER NOT NULL DEFAULT 0)",
        "INSERT INTO calls VALUES (1.0, 's', NULL, NULL, 'chat', 'm', 'local', 1, 2, 3, 0.5, 0, 0, 0)"))
    ledger = Ledger(path)
    ledger.record(UsageRow(api="chat", model="m2", platform="local", total_tokens=5, asked="alias", end_user="u"))
    rows = ledger.rows()
    assert [(r.model, r.asked, r.end_user, r.total_tokens) for r in rows] == [("m", "", "", 3),
                                                                                ("m2", "alias", "u", 5)]
    assert ledger.record_once(UsageRow(api="fine-tune", model="m", platform="local"), "job-1")
    assert not ledger.record_once(UsageRow(api="fine-tune", model="m", platform="local"), "job-1")
    ledger.close()


def test_the_cache_tightens_an_older_files_mode_and_adds_its_model_column(tmp_path: Path) -> None:
    path = _old_file(tmp_path / "cache.sqlite3", (
        "CREATE TABLE answers (key TEXT PRIMARY KEY, target TEXT NOT NULL, stream INTEGER NOT NULL, payload TEXT "
        "NOT NULL, size INTEGER NOT NULL, created REAL NOT NULL, used REAL NOT NULL, hits INTEGER NOT NULL "
        "DEFAULT 0, saved_tokens INTEGER NOT NULL DEFAULT 0)",))
    path.chmod(0o644)
    cache = ResponseCache(path)
    cache.put("k", "chat", [{"usage": {"total_tokens": 4}}], stream=False, model="m")
    got = cache.get("k")
    assert got is not None and got.model == "m"
    assert _mode(path) == 0o600


def test_client_spans_and_platform_spans_share_one_table(tmp_path: Path) -> None:
    write_spans([_span("from-client")], tmp_path)
    sink = TraceSink(tmp_path, export=None)
    sink.add(_span("from-platform"))
    sink.close()
    assert _mode(tmp_path / TRACES_FILE) == 0o600
    assert [s.model for s in read_spans(tmp_path)] == ["from-client", "from-platform"]


def test_the_platform_store_opens_its_file_private_in_wal_mode(tmp_path: Path) -> None:
    store = Store(tmp_path / "data" / "platform.sqlite3")
    try:
        record = store.insert("datasets", {"name": "d"})
        got = store.get("datasets", record["sid"])
        assert got is not None and got["name"] == "d"
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._db.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
    finally:
        store.close()
    assert _mode(tmp_path / "data" / "platform.sqlite3") == 0o600
