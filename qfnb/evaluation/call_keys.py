"""An evaluation item's model call keyed by what it asks, not at random.

The local platform keeps a keyed call's answer (:mod:`qfnb.local.server.middleware.idempotency`:
per ``Idempotency-Key`` and credential, for ten minutes, and a call whose client left goes on for
a while). qfnb's client sends a new random key per call, so a kernel that died during an evaluation
leaves answers the platform computed and nobody can ask for. An evaluation with an answer store
(:class:`qfnb.evaluation.runs.answers.AnswerStore`, which reuses answers on a rerun anyway) asks
each item under :func:`call_key`: the item's store key (model identity, input, inference settings,
repeat) and the exact item body the runner sends. The restarted kernel's rerun of the same
evaluation sends the same keys and takes the kept answers; a changed item, model, setting or
repeat is another key (and a same key with another body is refused by the platform, never answered
with the wrong answer). The item's index is left out on purpose: the store keys by what is asked,
so an item moved by a new row keeps its answer, and two identical items are one call.

The platform keeps answers per caller: a credential that stays the same across the restart (a v2
API key, IAM keys) reaches them; v1 app keys do not, as each kernel fetches an OAuth access token
of its own and the platform keeps answers per token.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

__all__ = ["KEY_PREFIX", "call_key", "current_item_keys", "item_keys"]

#: what starts every evaluation call's key (a daemon's log tells them from a random one)
KEY_PREFIX = "qfnb-eval-"

_ITEM_KEYS: ContextVar[Sequence[str] | None] = ContextVar("qfnb_eval_item_keys", default=None)


@contextlib.contextmanager
def item_keys(keys: Sequence[str] | None) -> Iterator[None]:
    """Inside, a runner asked for items ``0..n-1`` keys item ``i``'s call by ``keys[i]`` (None: random keys)."""
    token = _ITEM_KEYS.set(keys)
    try:
        yield
    finally:
        _ITEM_KEYS.reset(token)


def current_item_keys(count: int) -> Sequence[str] | None:
    """The item keys of :func:`item_keys`, when there is one per each of the ``count`` items asked now."""
    keys = _ITEM_KEYS.get()
    return keys if keys is not None and len(keys) == count else None


def call_key(item_key: str, body: Mapping[str, Any]) -> str:
    """The ``Idempotency-Key`` of the call asking ``body`` for the item stored under ``item_key``."""
    blob = json.dumps([item_key, body], ensure_ascii=False, sort_keys=True, default=str)
    return KEY_PREFIX + hashlib.sha256(blob.encode()).hexdigest()
