"""What the client keeps of its calls: the response cache, the usage ledger, prices, the budget.
A room of ``qfnb._core``: may import ``qfnb.protocol`` and the rooms below it (globals, config,
backend, transport, errors); ``http`` and ``runtime`` import it, never the reverse."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")


@contextlib.contextmanager
def bound(var: contextvars.ContextVar[T], value: T) -> Iterator[None]:
    """``var`` is ``value`` inside (and in tasks started inside), and what it was again after."""
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)
