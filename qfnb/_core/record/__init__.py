"""What the client keeps of its calls: the response cache, the usage ledger, prices, the budget.
A room of ``qfnb._core``: may import ``qfnb.protocol`` and the rooms below it (globals, config,
backend, transport, errors); ``http`` and ``runtime`` import it, never the reverse."""

from __future__ import annotations

import contextvars
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")


class bound(Generic[T]):  # named as the function it replaced: ``with bound(var, value):``
    """``var`` is ``value`` inside (and in tasks started inside), and what it was again after. (A class,
    not a generator: a batch enters a few a call.)"""

    __slots__ = ("_token", "_value", "_var")

    def __init__(self, var: contextvars.ContextVar[T], value: T) -> None:
        self._var, self._value = var, value

    def __enter__(self) -> None:
        self._token = self._var.set(self._value)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._var.reset(self._token)
