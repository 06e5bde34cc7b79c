"""The one visible line when the local platform answers a cloud model's name with a local model.

The first call in a process that a given cloud name is answered by a local model warns with a
:class:`LocalModelWarning` (a notebook shows it under the cell; the CLI prints it on stderr as one
``qfnb:`` line): e.g. "bge-large-zh → USE-Multilingual-v3 on the local platform (cloud model not
available offline)". Every later call of that pair is silent; the answer itself always names the
model that answered (``provenance["model"]``, v2 ``model``, the usage ledger).
"""

from __future__ import annotations

import threading
import warnings

from qfnb.protocol.console.model_names import PLATFORM_CHOICE, endpoint_for

__all__ = ["LocalModelWarning", "announce", "same_model"]

_shown: set[tuple[str, str]] = set()
_lock = threading.Lock()


class LocalModelWarning(UserWarning):
    """A model name the local platform does not serve was answered by a local model."""


def same_model(asked: str, answered: str) -> bool:
    """Whether ``asked`` names ``answered`` (its name or endpoint form, any case)."""
    return endpoint_for(asked) == endpoint_for(answered)


def announce(asked: str, answered: str) -> bool:
    """Warn once per process that ``answered`` stood in for ``asked``; True when this call warned."""
    if not asked or not answered or same_model(asked, answered) or same_model(asked, PLATFORM_CHOICE):
        return False  # "default" asks the platform to choose: its answer's X-Qfnb-Notice says which
    with _lock:
        if (endpoint_for(asked), endpoint_for(answered)) in _shown:
            return False
        _shown.add((endpoint_for(asked), endpoint_for(answered)))
    warnings.warn(f"{asked} → {answered} on the local platform (cloud model not available offline)",
                  LocalModelWarning, stacklevel=2)
    return True
