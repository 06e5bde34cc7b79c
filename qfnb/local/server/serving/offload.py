"""Blocking steps of inference calls (model lookup, a first load) on the inference routes' own
threads, so console, token and health routes never wait behind inference."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter

T = TypeVar("T")
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter] = weakref.WeakKeyDictionary()


async def offload(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` on the inference routes' own threads (see the module's docstring)."""
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = CapacityLimiter(16)
    return await anyio.to_thread.run_sync(lambda: fn(*args), limiter=limiter)
