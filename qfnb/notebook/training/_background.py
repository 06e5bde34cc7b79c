"""Start a notebook job's coroutine on qfnb's loop, its displays routed like a thread's.

ipykernel keeps the cell a message belongs to (its parent header) in a context variable, and an
asyncio task copies the context of the code that submitted it: a dashboard's final update, sent
while a *later* cell runs, would then claim the earlier cell as its parent, and a client that
follows the running cell (nbclient, which saves the notebook) drops it. Submitted from an empty
context, the job's messages fall back to the kernel's current parent, as a thread's do.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
from collections.abc import Coroutine
from typing import Any, TypeVar

from qfnb._core.runtime import sync

__all__ = ["submit"]

T = TypeVar("T")


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """:func:`qfnb._core.runtime.sync.submit` from an empty context (see the module docstring)."""
    return contextvars.Context().run(sync.submit, coro)
