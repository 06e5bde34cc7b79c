"""Creates run once per ``Idempotency-Key``: a call that creates something or starts paid work (a fine-tune
job or task, a deployment, a model publish, a batch inference task, an evaluation, a dataset, a prompt
template: :data:`qfnb.protocol.wires.qianfan.routes.KEYED_CREATES`), sent again under its key by the same caller,
gets its first answer and creates nothing.

:func:`run_once` runs the create in one store transaction that also records the key, the request's
fingerprint and the answer (:meth:`~qfnb.local.domain.state.store.Store.keep_keyed_answer`): a daemon killed
before the commit kept none of it (the call sent again runs anew), one killed after it (before its answer
left) finds the key after its restart and answers the stored answer. A second try sent while the first
runs waits for it (in this process; a try in another process sharing the data dir that loses the race has
its records rolled back), then gets the first's answer. A create that fails records nothing (a retry runs
it again). The same key with another route or body is refused (:class:`KeyReused`). Keys
are kept per caller (a digest of the credential), for a day, the last 10,000.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from qfnb.local.domain.state.store import KeyTaken, Store
from qfnb.protocol.wires.qianfan.routes import IDEMPOTENCY_HEADER

log = logging.getLogger("qfnb.local.domain.records.keyed_creates")


class KeyReused(Exception):
    """The key was used before by this caller for another request (another route or body)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"{IDEMPOTENCY_HEADER} {key!r} was used for another request (a different body or "
                         "route); a retry sends the same request, a new call a new key")
        self.key = key


@dataclass(frozen=True)
class Created:
    """A keyed create's ``answer``, and whether it is the stored one of an earlier try (``replayed``)."""

    answer: Any
    replayed: bool


def fingerprint(route: str, body: dict[str, Any]) -> str:
    """What identifies a request under its key: its route (path and ``Action``) and its body, key order
    aside."""
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{route}\n{text}".encode()).hexdigest()


def run_once(store: Store, owner: str, key: str, route: str, body: dict[str, Any],
             create: Callable[[], Any]) -> Created:
    """``create()``'s answer, made once per ``owner`` and ``key``: the stored answer when the key was
    recorded (:class:`KeyReused` when under another request), else ``create()`` run in the transaction that
    records the key with its answer. Tries of one key in this process run one after the other."""
    made = fingerprint(route, body)
    with _turns.turn((str(store.path), owner, key)):
        found = store.keyed_answer(owner, key)
        if found is None:
            try:
                with store.transaction():
                    answer = create()
                    store.keep_keyed_answer(owner, key, made, answer)
                return Created(answer, replayed=False)
            except KeyTaken:  # another process's try was recorded first: this one's records were undone
                found = store.keyed_answer(owner, key)
        if found is None or found.fingerprint != made:
            raise KeyReused(key)
        log.info("%s: a call sent again under its key; its first answer, nothing created", route)
        return Created(found.answer, replayed=True)


class _Turns:
    """One lock per key in use: a try sent while an earlier one runs waits for it, then gets its answer."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str, str], tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def turn(self, name: tuple[str, str, str]) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(name, (threading.Lock(), 0))
            self._locks[name] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[name]
                if users == 1:
                    del self._locks[name]
                else:
                    self._locks[name] = (lock, users - 1)


_turns = _Turns()
