"""The data dir's SQLite files, opened one way (:func:`open_db`): user-only (``0600``, WAL side files
too), autocommit (a write is one :func:`transaction`), WAL, shared by threads under the owner's
lock and by processes through SQLite's locking, the schema created and a file from before brought
up to date. The usage ledger,
the response cache, the trace table and the local platform's store open their files here."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["LazyDb", "open_db", "select", "transaction"]


def open_db(path: Path, schema: str = "", *, timeout: float = 30.0, synchronous: str | None = None,
            columns: Mapping[str, Mapping[str, str]] | None = None) -> sqlite3.Connection:
    """The file at ``path``, waiting up to ``timeout`` for another writer's lock, its ``schema`` script
    run and the ``columns`` a file from before lacks added (table -> name -> declaration);
    ``synchronous``: the ``PRAGMA synchronous`` level, when not SQLite's default."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # a new file is private from its first byte; an existing one is never opened outside SQLite:
    # closing a descriptor drops every POSIX lock this process holds on the file, a live
    # connection's included, and another process may then take itself for the last connection,
    # checkpoint and delete the WAL under it ("database disk image is malformed")
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        if synchronous is not None:
            db.execute(f"PRAGMA synchronous={synchronous}")
        db.executescript(schema)
        for table, added in (columns or {}).items():
            present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            for name in added.keys() - present:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {added[name]}")
        for kept in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if kept.exists() and kept.stat().st_mode & 0o077:  # a file from before, or its WAL side files
                os.chmod(kept, 0o600)
    except BaseException:
        db.close()
        raise
    return db


def select(db: sqlite3.Connection, query: str, conditions: Mapping[str, Any], tail: str = "",
           args: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """The rows (column -> value) of ``query`` where every condition holds (``{"ts >=": since}``; a
    None value is no condition), then ``tail`` (``ORDER BY …``) with its ``args``."""
    given = {test: value for test, value in conditions.items() if value is not None}
    where = " WHERE " + " AND ".join(f"{test} ?" for test in given) if given else ""
    cur = db.execute(query + where + tail, [*given.values(), *args])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


@contextlib.contextmanager
def transaction(db: sqlite3.Connection, *, immediate: bool = False) -> Iterator[sqlite3.Connection]:
    """A transaction committed when the block ends, rolled back when it raises (``immediate``: the
    write lock taken at once)."""
    db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise


class LazyDb:
    """An object's one connection to its file: ``opener`` (an :func:`open_db` call) at first use, closed
    by :meth:`close` (a later use opens it again). The owner's lock serializes every use."""

    def __init__(self, opener: Callable[[], sqlite3.Connection]) -> None:
        self._open = opener
        self._db: sqlite3.Connection | None = None

    def conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = self._open()
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
