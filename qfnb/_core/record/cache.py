"""The response cache: identical requests answer from disk, so a notebook replays for free.

One SQLite file (WAL) in the data dir, mode 0600, shared by every kernel and script of the user.
A key covers everything that decides an answer (:func:`cache_key`); only whole, successful answers
are stored (a stream only once its last chunk arrived); the least recently used entries go first
when the file passes its size bound. Secrets never enter a key or an entry: the platform is named
by its base URL only.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qfnb._core.record import bound
from qfnb.protocol.platform.daemon import default_data_dir
from qfnb.protocol.platform.sqlite_files import LazyDb, open_db

__all__ = [
    "CACHE_FILE",
    "CacheStats",
    "CachedAnswer",
    "ResponseCache",
    "cache_key",
    "cache_mode",
    "current_repeat",
    "deciding_fields",
    "default_cache",
    "mode_for",
    "process_mode",
    "repeat_index",
    "set_process_mode",
]

logger = logging.getLogger("qfnb.cache")

CACHE_FILE = "responses.sqlite3"
#: the default size bound; ``QFNB_CACHE_MAX_MB`` changes it
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
#: body fields that change how an answer travels, not what it says
_TRANSPORT_ONLY = frozenset({"user_id", "request_id"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    stream INTEGER NOT NULL,
    payload TEXT NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL,
    used REAL NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0,
    saved_tokens INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS answers_used ON answers(used);
CREATE INDEX IF NOT EXISTS answers_target ON answers(target);
"""


def cache_key(*, platform: str, route: str, target: str, body: Mapping[str, Any], version: str | None = None,
              repeat: int = 0, account: str = "") -> str:
    """The sha256 of everything that determines an answer.

    ``platform`` is the base URL (never a credential), ``account`` a hash of the cloud account
    (never the key itself), ``route`` the API path kind (``chat``, ``completions``, ``v2/chat``...),
    ``target`` the model or endpoint, ``version`` what serves it when known (the local platform's
    digest of the served model: its weights, adapter or engine), ``body`` the whole request body
    (messages, system, sampling parameters, seed, ``stream``) and ``repeat`` the repeat index where
    evaluations repeat.
    """
    canon = {"platform": platform.rstrip("/"), "route": route, "target": target.lower(), "version": version,
             "repeat": repeat, "body": deciding_fields(body)}
    if account:
        canon["account"] = account
    text = json.dumps(canon, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def deciding_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` without what only says who sent it (``user_id``, the SDK's ``request_source``)."""
    out = {k: v for k, v in body.items() if k not in _TRANSPORT_ONLY}
    extra = out.get("extra_parameters")
    if isinstance(extra, Mapping) and "request_source" in extra:
        rest = {k: v for k, v in extra.items() if k != "request_source"}
        if rest:
            out["extra_parameters"] = rest
        else:
            del out["extra_parameters"]
    return out


@dataclass(frozen=True)
class CachedAnswer:
    """A stored answer: one body, or a stream's chunk bodies in order; ``created`` is a unix time."""

    bodies: tuple[dict[str, Any], ...]
    stream: bool
    created: float
    #: the model that served it ("" when unknown: stored before the platform named it)
    model: str = ""

    @property
    def age(self) -> float:
        return max(0.0, time.time() - self.created)


@dataclass(frozen=True)
class CacheStats:
    entries: int
    bytes: int
    max_bytes: int
    hits: int
    saved_tokens: int
    path: Path


def _usage_tokens(bodies: Sequence[Mapping[str, Any]]) -> int:
    for body in reversed(bodies):
        usage = body.get("usage")
        if isinstance(usage, Mapping) and usage.get("total_tokens"):
            return int(usage["total_tokens"])
    return 0


@contextlib.contextmanager
def _unless_broken(doing: str) -> Iterator[None]:
    """The cache never breaks a call: a file it cannot open, read or write is a miss, logged."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        logger.warning("response cache: could not %s (%s)", doing, exc)


class ResponseCache:
    """The cache file at ``path``; safe across threads and processes (SQLite's own locking)."""

    def __init__(self, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._file = LazyDb(functools.partial(open_db, self.path, _SCHEMA, synchronous="NORMAL",
                                              columns={"answers": {"model": "TEXT NOT NULL DEFAULT ''"}}))

    def get(self, key: str) -> CachedAnswer | None:
        """The answer stored under ``key`` (marked as used), or None."""
        row = None
        with self._lock, _unless_broken("read an answer"):
            db = self._file.conn()
            row = db.execute("SELECT payload, stream, created, model FROM answers WHERE key=?", (key,)).fetchone()
            if row is not None:
                bodies = tuple(json.loads(row[0]))
                with _unless_broken("mark an answer used"):  # the answer read stays a hit
                    db.execute("UPDATE answers SET used=?, hits=hits+1, saved_tokens=saved_tokens+? WHERE key=?",
                               (time.time(), _usage_tokens(bodies), key))
        if row is None:  # not stored, or the file could not be read
            return None
        return CachedAnswer(bodies=bodies, stream=bool(row[1]), created=float(row[2]), model=str(row[3]))

    def put(self, key: str, target: str, bodies: Sequence[Mapping[str, Any]], *, stream: bool,
            model: str = "") -> None:
        """Store a whole, successful answer (``model``: the one that served it), then trim to the size
        bound (oldest use first)."""
        payload = json.dumps(list(bodies), ensure_ascii=False, separators=(",", ":"))
        now = time.time()
        with self._lock, _unless_broken("store an answer"):
            db = self._file.conn()
            db.execute("INSERT OR REPLACE INTO answers(key, target, stream, payload, size, created, used, model) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (key, target.lower(), int(stream), payload,
                                                           len(payload.encode("utf-8")), now, now, model))
            self._trim(db)

    def _trim(self, db: sqlite3.Connection) -> None:
        total = int(db.execute("SELECT COALESCE(SUM(size), 0) FROM answers").fetchone()[0])
        if total <= self.max_bytes:
            return
        excess = total - self.max_bytes
        freed = 0
        doomed: list[str] = []
        for key, size in db.execute("SELECT key, size FROM answers ORDER BY used ASC"):
            doomed.append(key)
            freed += int(size)
            if freed >= excess:
                break
        db.executemany("DELETE FROM answers WHERE key=?", [(k,) for k in doomed])
        logger.debug("response cache: dropped %d least recently used answers (%d bytes)", len(doomed), freed)

    def invalidate(self, target: str) -> int:
        """Forget every answer of a model or endpoint (a new version was deployed); the count."""
        with self._lock:
            cur = self._file.conn().execute("DELETE FROM answers WHERE target=?", (target.lower(),))
            return int(cur.rowcount or 0)

    def clear(self) -> int:
        with self._lock:
            cur = self._file.conn().execute("DELETE FROM answers")
            count = int(cur.rowcount or 0)
            self._file.conn().execute("VACUUM")
            return count

    def stats(self) -> CacheStats:
        with self._lock:
            entries, size, hits, saved = self._file.conn().execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(hits), 0), "
                "COALESCE(SUM(saved_tokens), 0) FROM answers").fetchone()
        return CacheStats(int(entries), int(size), self.max_bytes, int(hits), int(saved), self.path)

    def close(self) -> None:
        with self._lock:
            self._file.close()


_process_mode = "off"
_mode_here: contextvars.ContextVar[str | None] = contextvars.ContextVar("qfnb_cache_mode", default=None)
_repeat_here: contextvars.ContextVar[int] = contextvars.ContextVar("qfnb_cache_repeat", default=0)


def cache_mode(mode: str) -> contextlib.AbstractContextManager[None]:
    """Calls made inside (and in tasks started inside) use this cache mode unless their config sets
    one: ``--fresh`` asks again with ``refresh``."""
    if mode not in ("on", "off", "refresh"):
        raise ValueError(f"cache mode must be on, off or refresh, got {mode!r}")
    return bound(_mode_here, mode)


def repeat_index(repeat: int) -> contextlib.AbstractContextManager[None]:
    """Calls made inside are repeat ``repeat`` of the same request (an evaluation's repeats): each
    repeat has its own cache entry, so asking N times gives N samples, not one answer N times."""
    return bound(_repeat_here, repeat)


def mode_for(configured: str | None) -> str:
    """The cache mode of a call: its config's, else the process's; a surrounding
    ``cache_mode("refresh")`` (``--fresh``) turns a cache that is on into one that asks again."""
    mode = configured or _process_mode
    return "refresh" if mode == "on" and _mode_here.get() == "refresh" else mode


def current_repeat() -> int:
    return _repeat_here.get()


def set_process_mode(mode: str) -> str:
    """The cache mode of calls whose config leaves it unset (``%qfcache on|off``); the previous one."""
    global _process_mode
    if mode not in ("on", "off", "refresh"):
        raise ValueError(f"cache mode must be on, off or refresh, got {mode!r}")
    previous, _process_mode = _process_mode, mode
    return previous


def process_mode() -> str:
    return _process_mode


_default: dict[Path, ResponseCache] = {}
_default_lock = threading.Lock()


def default_cache() -> ResponseCache:
    """The cache of the current data dir (``$QFNB_DATA_DIR`` or ``~/.qfnb``), one per process."""
    path = default_data_dir() / CACHE_FILE
    with _default_lock:
        cache = _default.get(path)
        if cache is None:
            raw = os.environ.get("QFNB_CACHE_MAX_MB")
            max_bytes = int(float(raw) * 1024 * 1024) if raw else DEFAULT_MAX_BYTES
            cache = _default[path] = ResponseCache(path, max_bytes=max_bytes)
        return cache
