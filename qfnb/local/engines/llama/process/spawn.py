"""Starting engine processes that die with the platform.

An engine (``llama-server``) is started with ``PR_SET_PDEATHSIG``: the kernel sends it SIGTERM
the moment the platform process dies, even by SIGKILL, so a killed daemon leaves no 1 GB engine
running on. The signal fires when the *thread* that forked the child ends, so every engine is
forked from one long-lived thread of its own (a one-worker pool whose thread lives as long as
the process), never from a short-lived worker thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

PR_SET_PDEATHSIG = 1

#: the long-lived thread every engine is forked from (an executor starts its thread on first use and
#: keeps it for good)
SPAWNER = ThreadPoolExecutor(1, thread_name_prefix="qfnb-engine-spawn")


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    prctl: Callable[..., int] = libc.prctl
    return prctl


def die_with_parent(parent: int) -> Callable[[], None]:
    """A ``preexec_fn``: SIGTERM this child when the process ``parent`` (its forker) dies."""
    prctl = _prctl()

    def preexec() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os._exit(1)

    return preexec


def popen(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(argv, **kwargs)`` for a process that dies with this one (Linux; elsewhere
    a plain Popen), forked from the long-lived spawner thread."""
    parent = os.getpid()

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(list(argv), preexec_fn=die_with_parent(parent), **kwargs)

    return SPAWNER.submit(start).result()
