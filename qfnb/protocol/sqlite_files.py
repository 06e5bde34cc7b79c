"""The data dir's SQLite files, opened one way: created readable by the user only, in autocommit
mode (each writer's transaction is its own ``BEGIN`` … ``COMMIT``: :func:`transaction`), shared by
threads under the caller's lock and by processes through SQLite's locking (a writer waits for
another's lock up to ``timeout``), in WAL journal mode (readers never wait for the writer), and
their schema created when missing. The usage ledger, the response cache, the trace table and the
local platform's store all open their files here.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

__all__ = ["LazyDb", "add_columns", "open_db", "private_file", "transaction"]


def private_file(path: Path) -> None:
    """Create ``path`` when missing, readable by the user only (a new folder ``0700``, a new file ``0600``)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))


def open_db(path: Path, schema: str = "", *, timeout: float = 30.0,
            synchronous: str | None = None) -> sqlite3.Connection:
    """The SQLite file at ``path`` (created user-only), in autocommit and WAL mode, usable from any
    thread (the caller serializes), its ``schema`` script run (``CREATE … IF NOT EXISTS``);
    ``synchronous``: the ``PRAGMA synchronous`` level, when not SQLite's default (``"NORMAL"``)."""
    private_file(path)
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        if synchronous is not None:
            db.execute(f"PRAGMA synchronous={synchronous}")
        if schema:
            db.executescript(schema)
    except BaseException:
        db.close()
        raise
    return db


def add_columns(db: sqlite3.Connection, table: str, columns: Mapping[str, str]) -> None:
    """Add to ``table`` each of ``columns`` (name -> its declaration) that a file from before lacks."""
    present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    for name, declaration in columns.items():
        if name not in present:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")


@contextlib.contextmanager
def transaction(db: sqlite3.Connection, *, immediate: bool = False) -> Iterator[sqlite3.Connection]:
    """One transaction on an autocommit connection: committed when the block ends, rolled back
    when it raises (the error goes on); ``immediate`` takes the write lock at once."""
    db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise


class LazyDb:
    """The one connection of an object that keeps a data-dir file (the ledger, the cache, a trace
    sink): opened with :func:`open_db` at first use, then ``prepare`` run on it (a file from before
    brought up to date), closed by :meth:`close`. The owner's lock serializes every use."""

    def __init__(self, path: Path, schema: str, *, synchronous: str | None = None,
                 prepare: Callable[[sqlite3.Connection], None] | None = None) -> None:
        self.path, self.schema, self.synchronous, self.prepare = Path(path), schema, synchronous, prepare
        self._db: sqlite3.Connection | None = None

    def conn(self) -> sqlite3.Connection:
        if self._db is None:
            db = open_db(self.path, self.schema, synchronous=self.synchronous)
            if self.prepare is not None:
                try:
                    self.prepare(db)
                except BaseException:
                    db.close()
                    raise
            self._db = db
        return self._db

    def close(self) -> None:
        """Close the connection (a later use opens it again)."""
        if self._db is not None:
            self._db.close()
            self._db = None
