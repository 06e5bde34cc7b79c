"""Durable state of the local platform: one SQLite file (WAL) under the data dir.

Every kind of object lives in its own table with both of the platform's ids: an integer
``id`` (v1 style) and a string ``sid`` (v2 style, ``job-…``, ``task-…``, ``am-…``). The
rest of the record is a JSON document, so the wire shapes can grow without migrations.

Fine-tuning naming (reference §3.0): a *container* is a v1 task = a v2 job
(table ``ft_jobs``); a *run* is a v1 job = a v2 task (table ``runs``).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qfnb.protocol.platform.sqlite_files import open_db

KINDS: dict[str, str] = {
    "datasets": "ds-",
    "ft_jobs": "job-",
    "runs": "task-",
    "models": "am-",
    "versions": "amv-",
    "services": "svco-",
    "evaluations": "ev-",
    "batches": "infer-",   # offline batch-inference tasks (also OpenAI batches)
    "files": "file-",      # OpenAI-style uploaded files (objects in the local BOS)
    "prompts": "pt-",      # prompt templates (the v1 prompt library)
    "responses": "resp_",  # stored Responses-API turns (conversations: domain/records/responses.py)
    "chat_completions": "chatcmpl-",  # stored OpenAI chat completions (store: true; domain/records/chat_completions.py)
}

Record = dict[str, Any]
#: a record's usage per model (``model -> [requests, prompt tokens, completion tokens]``): each kind's
#: records' maps are summed as they are written (:meth:`Store.usage_totals`), so reading the sum
#: reads no record; a model key left empty counts under the record's ``model``
USAGE_FIELD = "usageByModel"


@dataclass(frozen=True)
class KeyedAnswer:
    """What a keyed create answered (:meth:`Store.keyed_answer`): its request's ``fingerprint`` and its
    ``answer`` (JSON)."""

    fingerprint: str
    answer: Any


#: how long a keyed create's answer is kept (a retry, or a cell run again, comes within the day)
KEYED_TTL_SECONDS = 86_400.0
#: the most keyed answers kept (all callers together; the oldest go first)
KEYED_MAX = 10_000


class KeyTaken(Exception):
    """A keyed create's key was recorded meanwhile (by another try: another process's, sharing the data dir)."""


@dataclass
class _Transaction:
    """A thread's open :meth:`Store.transaction`: whether its first write began it, what runs once it commits."""

    begun: bool = False
    after: list[Callable[[], object]] = field(default_factory=list)


@dataclass(frozen=True)
class Kept:
    """How much of one kind a store keeps: the last ``records`` stored, none older than
    ``seconds`` (None: no age limit)."""

    records: int
    seconds: float | None = None


def new_sid(prefix: str, size: int = 12) -> str:
    """A platform-looking string id: ``prefix`` + ``size`` lower-case alphanumerics."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(size))


def holds_pairs(path: str, pairs: Mapping[str, str]) -> tuple[str, list[Any]]:
    """An SQL condition for :meth:`Store.page`: the JSON object at ``path`` of a record's data holds
    every one of ``pairs`` as a string (``json_each``: any key, quoted or not)."""
    one = "EXISTS (SELECT 1 FROM json_each(data, ?) WHERE key = ? AND type = 'text' AND value = ?)"
    return " AND ".join([one] * len(pairs)), [v for k, value in pairs.items() for v in (path, k, value)]


def _usage(record: Record) -> dict[str, list[int]]:
    """``record``'s :data:`USAGE_FIELD` map (an empty model key named by the record's ``model``)."""
    usage = record.get(USAGE_FIELD)
    if not isinstance(usage, dict):
        return {}
    summed: dict[str, list[int]] = {}
    for model, counts in usage.items():
        total = summed.setdefault(str(model or record.get("model") or "unresolved"), [0, 0, 0])
        for i, n in enumerate(list(counts)[:3]):
            total[i] += int(n)
    return summed


class Store:
    """Thread-safe access to the platform's SQLite database. ``kept`` bounds the kinds a client
    fills at will (stored chat completions and responses): each insert drops what is past them."""

    def __init__(self, path: Path, kept: Mapping[str, Kept] | None = None, *, keyed_ttl: float = KEYED_TTL_SECONDS,
                 keyed_max: int = KEYED_MAX) -> None:
        self.path = path
        self.kept = dict(kept or {})
        self.keyed_ttl, self.keyed_max = keyed_ttl, keyed_max
        self._lock = threading.RLock()
        #: the open :meth:`transaction` of each thread that has one
        self._open: dict[int, _Transaction] = {}
        #: per kind, a number that changes whenever a record of that kind is written (for caches)
        self.generation: dict[str, int] = dict.fromkeys(KINDS, 0)
        # another server process may share the data dir: a write waits up to 10 s for its lock
        self._db = open_db(path, timeout=10.0, synchronous="NORMAL")
        with self._lock:
            for kind in KINDS:
                self._db.execute(
                    f"CREATE TABLE IF NOT EXISTS {kind} (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                    "sid TEXT UNIQUE NOT NULL, created REAL NOT NULL, data TEXT NOT NULL)")
            # tokens are kept as keyed hashes (``token_hashes``); an older version's plaintext
            # ``tokens`` table is dropped (its clients simply fetch new tokens)
            self._db.execute("DROP TABLE IF EXISTS tokens")
            self._db.execute("CREATE TABLE IF NOT EXISTS token_hashes (hash TEXT PRIMARY KEY, client_id TEXT NOT NULL, "
                             "expires REAL NOT NULL)")
            self._open_usage_totals()
            self._db.execute("CREATE TABLE IF NOT EXISTS keyed_calls (owner TEXT NOT NULL, key TEXT NOT NULL, "
                             "fingerprint TEXT NOT NULL, answer TEXT NOT NULL, created REAL NOT NULL, "
                             "PRIMARY KEY (owner, key))")
            self._db.execute("CREATE INDEX IF NOT EXISTS keyed_calls_created ON keyed_calls (created)")
            for kind in self.kept:
                self._check(kind)
                self._db.execute(f"CREATE INDEX IF NOT EXISTS {kind}_created ON {kind} (created)")
                self._trim(kind)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- transactions ------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction over the writes this thread makes in the block: committed when it ends,
        rolled back (none of them kept) when it raises. It begins at the block's first write, which takes
        the write lock until it ends: other threads' store calls and other processes' writes wait for it,
        while what the block does before (its checks, its files) holds nothing. A block inside another
        joins it."""
        me = threading.get_ident()
        if me in self._open:
            yield
            return
        tx = self._open[me] = _Transaction()
        try:
            yield
            if tx.begun:
                self._db.execute("COMMIT")
        except BaseException:  # the block or its commit failed
            if tx.begun:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise
        finally:
            del self._open[me]
            if tx.begun:
                self._lock.release()
        for then in tx.after:
            then()

    def after_commit(self, then: Callable[[], object]) -> None:
        """Run ``then`` once this thread's :meth:`transaction` committed (never, when it rolls back), or now
        when none is open: what starts work on a new record (a thread, a queue) starts once the record is
        stored for good, and takes no other lock while the store's is held."""
        tx = self._open.get(threading.get_ident())
        if tx is None:
            then()
        else:
            tx.after.append(then)

    def _writing(self) -> None:
        """Before each write (the store's lock held): the first write of this thread's open transaction
        begins it, the lock kept until the transaction ends."""
        tx = self._open.get(threading.get_ident())
        if tx is None or tx.begun:
            return
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        tx.begun = True

    # ---- records ---------------------------------------------------------------------

    @staticmethod
    def _check(kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown record kind {kind!r}")

    @staticmethod
    def _row(row: tuple[Any, ...]) -> Record:
        rec: Record = json.loads(row[3])
        rec.update(id=row[0], sid=row[1], created=row[2])
        return rec

    def insert(self, kind: str, data: dict[str, Any], sid: str | None = None) -> Record:
        """Store a new record and return it with its ``id``, ``sid`` and ``created``."""
        self._check(kind)
        sid = sid or new_sid(KINDS[kind])
        now = time.time()
        with self._lock:
            self._writing()
            cur = self._db.execute(f"INSERT INTO {kind} (sid, created, data) VALUES (?, ?, ?)",
                                   (sid, now, json.dumps(data, ensure_ascii=False)))
            rowid = cur.lastrowid
            if USAGE_FIELD in data:
                self._add_usage(kind, _usage(data), {})
            self.generation[kind] += 1
            if kind in self.kept:
                self._trim(kind)
        return {**data, "id": rowid, "sid": sid, "created": now}

    def _trim(self, kind: str) -> int:
        """Drop the records of ``kind`` past what :attr:`kept` keeps (by id and by the ``created``
        index: no scan); how many went."""
        kept = self.kept[kind]
        gone = self._db.execute(f"DELETE FROM {kind} WHERE id <= (SELECT max(id) FROM {kind}) - ?",
                                (kept.records,)).rowcount
        if kept.seconds is not None:
            gone += self._db.execute(f"DELETE FROM {kind} WHERE created < ?", (time.time() - kept.seconds,)).rowcount
        return gone

    def get(self, kind: str, key: int | str | None) -> Record | None:
        """A record by integer id or string sid (a numeric string counts as an id)."""
        self._check(kind)
        if isinstance(key, bool) or not isinstance(key, int | str):
            return None
        if isinstance(key, str) and key.isascii() and key.isdigit():
            key = int(key) if len(key) < 20 else -1
        if (isinstance(key, int) and not 0 <= key < 2**63) or (isinstance(key, str) and len(key) > 64):
            return None  # no such record (and nothing SQLite could compare)
        column = "id" if isinstance(key, int) else "sid"
        with self._lock:
            row = self._db.execute(f"SELECT id, sid, created, data FROM {kind} WHERE {column} = ?",
                                   (key,)).fetchone()
        return None if row is None else self._row(row)

    def get_or_raise(self, kind: str, key: Any, missing: Exception, prefix: str = "") -> Record:
        """:meth:`get`, raising ``missing`` when there is no such record (with a ``prefix``, also when ``key``
        is no string starting with it: a sid is asked for, never a number)."""
        found = self.get(kind, key) if not prefix or (isinstance(key, str) and key.startswith(prefix)) else None
        if found is None:
            raise missing
        return found

    def update(self, kind: str, rid: int, **changes: Any) -> Record:
        """Merge ``changes`` into the record's document atomically; return the new record. A change of
        its :data:`USAGE_FIELD` adds the difference to its kind's :meth:`usage_totals`, in the same
        transaction (another process sharing the data dir sees both or neither)."""
        self._check(kind)
        tallied = USAGE_FIELD in changes
        with self._lock:
            self._writing()
            # in an open transaction, a savepoint: undone alone when it fails, kept with the transaction
            begin, commit, rollback = (("SAVEPOINT tally", "RELEASE tally", "ROLLBACK TO tally")
                                       if self._db.in_transaction else ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"))
            if tallied:
                self._db.execute(begin)
            try:
                row = self._db.execute(f"SELECT id, sid, created, data FROM {kind} WHERE id = ?", (rid,)).fetchone()
                if row is None:
                    raise KeyError(f"{kind} {rid} not found")
                data: Record = json.loads(row[3])
                before = _usage(data) if tallied else {}
                data.update(changes)
                self._db.execute(f"UPDATE {kind} SET data = ? WHERE id = ?",
                                 (json.dumps(data, ensure_ascii=False), rid))
                if tallied:
                    self._add_usage(kind, _usage(data), before)
                    self._db.execute(commit)
            except BaseException:
                if tallied:
                    self._db.execute(rollback)
                    if rollback.startswith("ROLLBACK TO"):
                        self._db.execute(commit)
                raise
            self.generation[kind] += 1
        data.update(id=row[0], sid=row[1], created=row[2])
        return data

    def update_if(self, kind: str, rid: int, when: Callable[[Record], bool], **changes: Any) -> Record | None:
        """:meth:`update` when ``when(record)`` holds, the record read and written in one write transaction
        (no other thread or process sharing the data dir writes in between); None when it does not hold."""
        self._check(kind)
        with self.transaction(), self._lock:
            self._writing()  # the transaction begins here: the write lock is held from the read on
            record = self.get(kind, rid)
            if record is None:
                raise KeyError(f"{kind} {rid} not found")
            if not when(record):
                return None
            return self.update(kind, rid, **changes)

    # ---- usage totals ------------------------------------------------------------------

    def _open_usage_totals(self) -> None:
        """The totals' table; made (and filled from the records already there) by a store that
        finds none, as a data dir from before the totals has."""
        query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'usage_totals'"
        known = self._db.execute(query).fetchone()
        self._db.execute("CREATE TABLE IF NOT EXISTS usage_totals (kind TEXT NOT NULL, model TEXT NOT NULL, "
                         "requests INTEGER NOT NULL, prompt INTEGER NOT NULL, completion INTEGER NOT NULL, "
                         "PRIMARY KEY (kind, model))")
        if known is None:
            for kind in KINDS:
                for (text,) in self._db.execute(f"SELECT data FROM {kind} WHERE data LIKE ?", (f'%"{USAGE_FIELD}"%',)):
                    self._add_usage(kind, _usage(json.loads(text)), {})

    def _add_usage(self, kind: str, after: dict[str, list[int]], before: dict[str, list[int]]) -> None:
        for model in after.keys() | before.keys():
            new, old = after.get(model, [0, 0, 0]), before.get(model, [0, 0, 0])
            step = [a - b for a, b in zip(new, old, strict=True)]
            if any(step):
                self._db.execute(
                    "INSERT INTO usage_totals VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, model) DO UPDATE SET "
                    "requests = requests + excluded.requests, prompt = prompt + excluded.prompt, "
                    "completion = completion + excluded.completion", (kind, model, *step))

    def usage_totals(self, kind: str) -> dict[str, list[int]]:
        """The sum of ``kind``'s records' :data:`USAGE_FIELD` maps, per model (``[requests, prompt,
        completion]``), kept as they are written: one small read, however many records there are.
        A deleted record's usage stays counted (it was paid for)."""
        self._check(kind)
        with self._lock:
            rows = self._db.execute("SELECT model, requests, prompt, completion FROM usage_totals WHERE kind = ?",
                                    (kind,)).fetchall()
        return {str(model): [int(n) for n in counts] for model, *counts in rows}

    def delete(self, kind: str, rid: int) -> bool:
        """Remove a record; False when there was none."""
        self._check(kind)
        with self._lock:
            self._writing()
            cur = self._db.execute(f"DELETE FROM {kind} WHERE id = ?", (rid,))
            self.generation[kind] += 1
        return cur.rowcount > 0

    def page(self, kind: str, *, limit: int, order: str = "asc", after: str | None = None, where: str = "",
             params: Sequence[Any] = ()) -> tuple[list[Record], bool]:
        """Up to ``limit`` records of ``kind`` in id order (``asc`` or ``desc``) after the one whose
        sid is ``after`` (none when there is no such record), those an SQL condition ``where`` on
        their ``data`` (with ``params``) holds; and whether more follow. Reads the page, not the table."""
        self._check(kind)
        cmp, direction = (">", "ASC") if order == "asc" else ("<", "DESC")
        sql, args = f"SELECT id, sid, created, data FROM {kind} WHERE 1", list(params[:0])
        if after is not None:
            sql += f" AND id {cmp} (SELECT id FROM {kind} WHERE sid = ?)"
            args.append(after)
        if where:
            sql += f" AND ({where})"
            args += list(params)
        with self._lock:
            rows = self._db.execute(f"{sql} ORDER BY id {direction} LIMIT ?", (*args, limit + 1)).fetchall()
        return [self._row(r) for r in rows[:limit]], len(rows) > limit

    def all(self, kind: str, where: Callable[[Record], bool] | None = None) -> list[Record]:
        """Every record of ``kind`` (oldest first), optionally filtered."""
        self._check(kind)
        with self._lock:
            rows = self._db.execute(f"SELECT id, sid, created, data FROM {kind} ORDER BY id").fetchall()
        return [r for r in map(self._row, rows) if where is None or where(r)]

    # ---- keyed creates (qfnb.local.domain.records.keyed_creates) ----------------------------------

    def keyed_answer(self, owner: str, key: str) -> KeyedAnswer | None:
        """What ``owner``'s create under ``key`` answered, while it is kept (:attr:`keyed_ttl`); else None."""
        with self._lock:
            row = self._db.execute("SELECT fingerprint, answer FROM keyed_calls WHERE owner = ? AND key = ? AND "
                                   "created >= ?", (owner, key, time.time() - self.keyed_ttl)).fetchone()
        return None if row is None else KeyedAnswer(str(row[0]), json.loads(row[1]))

    def keep_keyed_answer(self, owner: str, key: str, fingerprint: str, answer: Any) -> None:
        """Record ``owner``'s create under ``key`` and its ``answer``, in the caller's :meth:`transaction`
        (kept with the records it made, or with none of them); :class:`KeyTaken` when another try recorded
        the key meanwhile. The answers past :attr:`keyed_ttl` and :attr:`keyed_max` go."""
        with self._lock:
            self._writing()
            now = time.time()
            self._db.execute("DELETE FROM keyed_calls WHERE created < ?", (now - self.keyed_ttl,))
            try:
                self._db.execute("INSERT INTO keyed_calls VALUES (?, ?, ?, ?, ?)",
                                 (owner, key, fingerprint, json.dumps(answer, ensure_ascii=False), now))
            except sqlite3.IntegrityError:
                raise KeyTaken(key) from None
            self._db.execute("DELETE FROM keyed_calls WHERE rowid IN (SELECT rowid FROM keyed_calls ORDER BY "
                             "created DESC LIMIT -1 OFFSET ?)", (self.keyed_max,))

    # ---- OAuth tokens (durable: the official SDK does not re-fetch a token for an hour) ----

    def add_token(self, token_hash: str, client_id: str, expires: float) -> None:
        with self._lock:
            self._writing()
            self._db.execute("INSERT OR REPLACE INTO token_hashes VALUES (?, ?, ?)", (token_hash, client_id, expires))

    def token(self, token_hash: str) -> tuple[str, float] | None:
        """``(client_id, expires)`` of a token (by its hash), or None when it was never issued."""
        with self._lock:
            row = self._db.execute("SELECT client_id, expires FROM token_hashes WHERE hash = ?",
                                   (token_hash,)).fetchone()
        return (str(row[0]), float(row[1])) if row else None

    def purge_tokens(self, now: float, grace: float = 86_400.0) -> int:
        """Forget tokens expired more than ``grace`` seconds ago (a day: recently expired ones
        still answer 'expired' rather than 'invalid'); returns how many went."""
        with self._lock:
            self._writing()
            return self._db.execute("DELETE FROM token_hashes WHERE expires < ?", (now - grace,)).rowcount
