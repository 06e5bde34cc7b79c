"""How many model calls this platform process has served, counted where they reach a model.

Every request an engine admits (chat, completion, embedding: from the inference routes, a batch
job's rows or an evaluation) is one call of that engine's model; every fine-tune worker started
is one call of kind ``fine-tune``. ``GET /qfnb/status`` reports the counts (``modelCalls``), so a
test or a person can check at the platform, not in the client, what a notebook asked of it.

Speculative decoding's work is counted here too (:func:`count_drafts`): the tokens an engine drafted
and those its model accepted, as llama-server reports them with each answer (``timings.draft_n``,
``timings.draft_n_accepted``); ``/metrics`` shows both per model.
"""

from __future__ import annotations

import threading
from collections import Counter

__all__ = ["FINE_TUNE", "count", "count_drafts", "drafts", "snapshot"]

#: the key fine-tune runs are counted under
FINE_TUNE = "fine-tune"

_counts: Counter[str] = Counter()
_drafted: Counter[str] = Counter()
_accepted: Counter[str] = Counter()
_lock = threading.Lock()


def count(model: str, n: int = 1) -> None:
    """One more call (``n`` more) of ``model``."""
    with _lock:
        _counts[model] += n


def snapshot() -> dict[str, int]:
    """The counts since this process started, by model (``fine-tune``: training runs started)."""
    with _lock:
        return dict(_counts)


def count_drafts(model: str, drafted: int, accepted: int) -> None:
    """One answer of ``model`` drafted ``drafted`` tokens, of which its model accepted ``accepted``."""
    with _lock:
        _drafted[model] += drafted
        _accepted[model] += accepted


def drafts() -> dict[str, tuple[int, int]]:
    """Draft tokens (drafted, accepted) since this process started, by model."""
    with _lock:
        return {m: (n, _accepted[m]) for m, n in _drafted.items()}
