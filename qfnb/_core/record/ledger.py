"""The usage ledger: every call's tokens, latency, retries and cache hit, in SQLite in the data dir.

Rows carry the process's session id, the notebook cell that made the call (the notebook layer sets
it with :func:`set_cell`) and the job it belonged to (:func:`job` tags a batch or an evaluation).
Reading is :meth:`Ledger.rows` / :meth:`Ledger.frame`; prices come from :mod:`.prices`.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import functools
import logging
import os
import sqlite3
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qfnb._core.record import bound
from qfnb._core.record.prices import price_rows
from qfnb.protocol.platform.daemon import default_data_dir
from qfnb.protocol.platform.sqlite_files import LazyDb, open_db, select, transaction
from qfnb.protocol.platform.usage_file import LEDGER_FILE, STORE_API, kernel_session_of_argv

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LEDGER_FILE", "SESSION", "STORE_API", "Figures", "Ledger", "SessionBudget", "UsageRow", "current_cell",
           "current_job", "default_ledger", "figures", "in_part", "job", "job_part", "launched_from", "set_cell",
           "under_session"]

logger = logging.getLogger("qfnb.usage")

#: cache-hit rows that are no replay from the response cache: store answers, reused platform jobs
_NOT_REPLAYS = (STORE_API, "batch-job", "fine-tune")
#: this process's session id (one per kernel or script): a Jupyter kernel's is made of its kernel id and
#: process (``usage_file.kernel_session``), so the Jupyter server writes its notebook's completions under it
SESSION = kernel_session_of_argv(sys.argv, os.getpid()) or uuid.uuid4().hex[:12]

#: failed calls of the same input made before the one under way (a batch sends a failed input again
#: as a new call): the ledger row of the call that answers counts them among its ``retries``
earlier_tries: contextvars.ContextVar[int] = contextvars.ContextVar("qfnb_earlier_tries", default=0)

_cell: int | None = None
_job: contextvars.ContextVar[str | None] = contextvars.ContextVar("qfnb_job", default=None)
_launched_from: contextvars.ContextVar[int | None] = contextvars.ContextVar("qfnb_launched_from", default=None)
_session: contextvars.ContextVar[str | None] = contextvars.ContextVar("qfnb_session", default=None)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    ts REAL NOT NULL, session TEXT NOT NULL, cell INTEGER, job TEXT, api TEXT NOT NULL,
    model TEXT NOT NULL, platform TEXT NOT NULL, prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL, total_tokens INTEGER NOT NULL, latency_s REAL NOT NULL,
    retries INTEGER NOT NULL, cache_hit INTEGER NOT NULL, trained_tokens INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS calls_ts ON calls(ts);
CREATE TABLE IF NOT EXISTS recorded_once (key TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS budgets (session TEXT PRIMARY KEY, tokens INTEGER, yuan REAL, since REAL NOT NULL);
"""
#: the columns a file from before lacks
_ADDED = {"calls": {**dict.fromkeys(("asked", "end_user"), "TEXT NOT NULL DEFAULT ''"),
                    "requests": "INTEGER NOT NULL DEFAULT 1"}}


def set_cell(execution_count: int | None) -> None:
    """The notebook cell now running (its execution count); calls made from here on carry it."""
    global _cell
    _cell = execution_count


def current_cell() -> int | None:
    """The cell calls made here count under: the one that launched this work (:func:`launched_from`),
    else the one running now."""
    launched = _launched_from.get()
    return launched if launched is not None else _cell


def launched_from(cell: int | None) -> contextlib.AbstractContextManager[None]:
    """Count the calls made inside (and in tasks started inside) under ``cell``, the cell that launched
    them, whichever cell runs when they end (a fine-tune in the background)."""
    return bound(_launched_from, cell)


def under_session(session: str | None) -> contextlib.AbstractContextManager[None]:
    """Record the calls made inside under ``session`` (another process's: the Jupyter server writes a
    notebook's completions under its kernel's session); None: this process's own."""
    return bound(_session, session)


def current_job() -> str | None:
    """The job the calls made here belong to (:func:`job`), or None."""
    return _job.get()


def job(name: str) -> contextlib.AbstractContextManager[None]:
    """Tag the calls made inside (and in tasks started inside) with a job name."""
    return bound(_job, name)


#: between a job's name and the name of one of its parts (an evaluation's model or prompt variant)
_PART = " · "


def job_part(tag: str) -> contextlib.AbstractContextManager[None]:
    """Tag the calls made inside as the part ``tag`` of the current job (``evaluation 1a2b · plain``):
    a run's forecast of one model or prompt variant reads that part's calls (:func:`in_part`)."""
    outer = _job.get()
    return bound(_job, f"{outer}{_PART}{tag}" if outer else tag)


def in_part(job_name: str | None, tag: str) -> bool:
    """Whether a row's job is the part ``tag`` of a job (:func:`job_part`)."""
    return job_name is not None and (job_name == tag or job_name.endswith(_PART + tag))


@dataclass(frozen=True)
class UsageRow:
    """One call as the ledger keeps it."""

    api: str
    model: str
    platform: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    latency_s: float = 0.0
    retries: int = 0
    cache_hit: bool = False
    trained_tokens: int = 0
    ts: float = 0.0
    session: str = ""
    cell: int | None = None
    job: str | None = None
    #: the name the call asked for when it differs from ``model`` (the one that answered), e.g. an alias
    asked: str = ""
    #: the end user the call was made for (the body's ``safety_identifier``, ``user`` or ``user_id``), or ""
    end_user: str = ""
    #: the model calls the row stands for: 1, or a batch job's answered rows (``/metrics`` counts each)
    requests: int = 1


#: the ledger's columns in :func:`_values`'s order (a new column goes in both; the tests check they agree)
_VALUE_ORDER = ("api", "model", "platform", "prompt_tokens", "completion_tokens", "total_tokens", "latency_s",
                "retries", "cache_hit", "trained_tokens", "ts", "session", "cell", "job", "asked", "end_user",
                "requests")
_COLUMNS = ", ".join(_VALUE_ORDER)


def _values(row: UsageRow, *, job: str | None) -> tuple[Any, ...]:
    """``row``'s column values as the file keeps them, stamped with the time, this session and the current
    cell where it has none, and ``job``; ``cache_hit`` as 0/1, in :data:`_VALUE_ORDER`. (Read field by field:
    ``asdict``'s deep copies, or a new frozen row, cost a batch's calls more than their JSON.)"""
    return (row.api, row.model, row.platform, row.prompt_tokens, row.completion_tokens, row.total_tokens,
            row.latency_s, row.retries, int(row.cache_hit), row.trained_tokens, row.ts or time.time(),
            row.session or _session.get() or SESSION, row.cell if row.cell is not None else current_cell(), job,
            row.asked, row.end_user, row.requests)


#: rows queued for the writer before a recording call writes them itself (a batch records thousands of
#: calls a second, and the writer takes them every 0.2 s)
PENDING_MAX = 8192


class Ledger:
    """The ledger file at ``path``. Appends are queued and written in batches by a background
    thread (never on the caller's event loop); reads flush first. Safe across processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()  # the queue: a recording call never waits for the file
        self._db_lock = threading.Lock()  # the file (taken before ``_lock`` where both are)
        self._file = LazyDb(functools.partial(open_db, self.path, _SCHEMA, columns=_ADDED))
        self._pending: list[tuple[Any, ...]] = []
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None

    def record(self, row: UsageRow) -> None:
        """Queue ``row``, stamped with the time, this session, the current cell and job."""
        values = _values(row, job=row.job if row.job is not None else _job.get())
        with self._lock:
            self._pending.append(values)
            queued = len(self._pending)
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="qfnb-usage-ledger", daemon=True)
                self._writer.start()
                atexit.register(self.flush)
        if queued >= PENDING_MAX:  # the writer is behind (a busy machine): this caller writes, bounding the queue
            self.flush()
        elif queued == 1:  # the first of a burst wakes the writer; it takes the rest with it
            self._wake.set()

    def record_once(self, row: UsageRow, key: str) -> bool:
        """Write ``row`` now unless a row under ``key`` (a platform's job) is in the file already,
        whichever process wrote it; whether this call wrote it."""
        self.flush()
        values = _values(row, job=row.job)
        with self._db_lock:
            try:
                with transaction(self._file.conn(), immediate=True) as db:
                    fresh = db.execute("INSERT OR IGNORE INTO recorded_once(key) VALUES (?)", (key,)).rowcount == 1
                    if fresh:
                        db.execute(f"INSERT INTO calls({_COLUMNS}) VALUES ({', '.join('?' * len(values))})", values)
            except (sqlite3.Error, OSError) as exc:  # the ledger never breaks a call
                logger.warning("usage ledger: could not record %s (%s)", key, exc)
                return False
        return fresh

    def _write_loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            time.sleep(0.2)  # let a burst of calls land in one transaction
            self.flush()

    def flush(self) -> None:
        """Write every queued row now."""
        with self._db_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                with transaction(self._file.conn()) as db:
                    db.executemany(f"INSERT INTO calls({_COLUMNS}) VALUES ({', '.join('?' * len(batch[0]))})", batch)
            except (sqlite3.Error, OSError) as exc:  # the ledger never breaks a call
                logger.warning("usage ledger: could not record %d calls (%s)", len(batch), exc)

    def rows(self, *, since: float | None = None, session: str | None = None) -> list[UsageRow]:
        self.flush()
        with self._db_lock:
            found = select(self._file.conn(), "SELECT * FROM calls", {"ts >=": since, "session =": session},
                           " ORDER BY ts")
        return [UsageRow(**{**r, "cache_hit": bool(r["cache_hit"])}) for r in found]

    def frame(self, **filters: Any) -> pd.DataFrame:
        """The rows as a pandas DataFrame, priced (``cost_yuan``, ``cloud_equivalent_yuan``)."""
        import pandas as pd

        rows = self.rows(**filters)
        frame = pd.DataFrame([asdict(r) for r in rows], columns=list(UsageRow.__dataclass_fields__))
        return price_rows(frame)

    def set_budget(self, session: str, tokens: int | None, yuan: float | None) -> None:
        """Write ``session``'s budget (counting from now; neither: none), for the processes that spend
        for it (the Jupyter server's completions) to read."""
        with self._db_lock:
            try:
                with transaction(self._file.conn()) as db:
                    db.execute("DELETE FROM budgets WHERE session = ?", (session,))
                    if tokens is not None or yuan is not None:
                        db.execute("INSERT INTO budgets(session, tokens, yuan, since) VALUES (?, ?, ?, ?)",
                                   (session, tokens, yuan, time.time()))
            except (sqlite3.Error, OSError) as exc:  # the ledger never breaks a call
                logger.warning("usage ledger: could not write the budget of %s (%s)", session, exc)

    def budget_of(self, session: str) -> SessionBudget | None:
        """``session``'s budget as its process wrote it, with what the session's calls used since."""
        self.flush()
        with self._db_lock:
            found = select(self._file.conn(), "SELECT * FROM budgets", {"session =": session}, "")
        if not found:
            return None
        row = found[0]
        spent = [r for r in self.rows(since=row["since"], session=session) if not r.cache_hit]
        return SessionBudget(row["tokens"], row["yuan"], sum(r.total_tokens for r in spent), tuple(spent))

    def close(self) -> None:
        self.flush()
        with self._db_lock:
            self._file.close()


@dataclass(frozen=True)
class SessionBudget:
    """A session's budget as its process set it (``tokens``, ``yuan``: None where unset), and what the
    session's calls used since: their tokens and the rows (priced by the reader)."""

    tokens: int | None
    yuan: float | None
    spent_tokens: int
    spent: tuple[UsageRow, ...]


_default: dict[Path, Ledger] = {}
#: the ledger by the variables that name its data dir (``QFNB_DATA_DIR``, ``HOME``): each call records
#: a row, and building the path each time cost more than the row
_by_env: dict[tuple[object, object], Ledger] = {}
_default_lock = threading.Lock()
#: those variables' names as the process's table of them spells them (``os.environ`` encodes a name to look it up)
_DIR_NAMES = (os.environ.encodekey("QFNB_DATA_DIR"), os.environ.encodekey("HOME"))


def _dir_variables() -> tuple[object, object]:
    """``QFNB_DATA_DIR`` and ``HOME`` as the process holds them, read from ``os.environ``'s own table: its
    ``get`` raises and catches a KeyError for an unset variable, which cost a call more than its ledger row."""
    try:
        table = os.environ._data  # type: ignore[attr-defined]
    except AttributeError:  # an environ that is not the os module's
        return os.environ.get("QFNB_DATA_DIR"), os.environ.get("HOME")
    return table.get(_DIR_NAMES[0]), table.get(_DIR_NAMES[1])


def default_ledger() -> Ledger:
    """The ledger of the current data dir (``$QFNB_DATA_DIR`` or ``~/.qfnb``), one per process."""
    key = _dir_variables()
    ledger = _by_env.get(key)
    if ledger is not None and _default.get(ledger.path) is ledger:  # (tests reset ``_default``)
        return ledger
    path = default_data_dir() / LEDGER_FILE
    with _default_lock:
        ledger = _default.get(path)
        if ledger is None:
            ledger = _default[path] = Ledger(path)
        _by_env[key] = ledger
        return ledger


@dataclass(frozen=True)
class Figures:
    """What a stretch of calls was, as a cell's bar, footer and ``%qfusage`` say it: calls a model
    generated (and their tokens), calls replayed from the response cache (the tokens they saved)
    and answers reused from an evaluation's answer store (no call made)."""

    generated: int = 0
    generated_tokens: int = 0
    replayed: int = 0
    saved_tokens: int = 0
    reused: int = 0

    @classmethod
    def of(cls, rows: list[UsageRow]) -> Figures:
        fresh = [r for r in rows if not r.cache_hit]
        hits = [r for r in rows if r.cache_hit and r.api not in _NOT_REPLAYS]
        return cls(generated=sum(r.requests for r in fresh),
                   generated_tokens=sum(r.total_tokens + r.trained_tokens for r in fresh),
                   replayed=len(hits), saved_tokens=sum(r.total_tokens + r.trained_tokens for r in hits),
                   reused=sum(r.api == STORE_API for r in rows))

    def line(self) -> str:
        """``2 calls generated 310 tokens · ↺ 18 replayed from the cache (2,790 tokens saved) · 20
        answers reused from the evaluation store`` (the parts that are not zero)."""
        parts = []
        if self.generated:
            parts.append(f"{self.generated:,} call{'s' * (self.generated != 1)} generated "
                         f"{self.generated_tokens:,} tokens")
        if self.replayed:
            parts.append(f"↺ {self.replayed:,} replayed from the cache ({self.saved_tokens:,} tokens saved)")
        if self.reused:
            parts.append(f"{self.reused:,} answer{'s' * (self.reused != 1)} reused from the evaluation store")
        return " · ".join(parts)


def figures(since: float, session: str = SESSION, *, cell: int | None = None) -> Figures:
    """The :class:`Figures` of ``session``'s calls recorded since ``since`` (only ``cell``'s, when given)."""
    rows = default_ledger().rows(since=since, session=session)
    return Figures.of([r for r in rows if r.cell == cell] if cell is not None else rows)
