"""How many model calls this platform process has served, counted where they reach a model.

Every request an engine admits (chat, completion, embedding: from the inference routes, a batch
job's rows or an evaluation) is one call of that engine's model; every fine-tune worker started
is one call of kind ``fine-tune``. ``GET /qfnb/status`` reports the counts (``modelCalls``), so a
test or a person can check at the platform, not in the client, what a notebook asked of it.
"""

from __future__ import annotations

import threading
from collections import Counter

__all__ = ["FINE_TUNE", "count", "snapshot"]

#: the key fine-tune runs are counted under
FINE_TUNE = "fine-tune"

_counts: Counter[str] = Counter()
_lock = threading.Lock()


def count(model: str, n: int = 1) -> None:
    """One more call (``n`` more) of ``model``."""
    with _lock:
        _counts[model] += n


def snapshot() -> dict[str, int]:
    """The counts since this process started, by model (``fine-tune``: training runs started)."""
    with _lock:
        return dict(_counts)
