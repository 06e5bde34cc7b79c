"""The usage ledger's file as the local platform reads it (the clients write it: ``qfnb._core.record.ledger``):
its name, and its calls summed by target (the ledger's ``platform``: ``local``, ``ray``, ``cloud``) and
model, so ``/metrics`` counts what ran on a Ray cluster's engines or the cloud beside what it served."""

from __future__ import annotations

import contextlib
import hashlib
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LEDGER_FILE", "STORE_API", "TargetUsage", "kernel_session", "kernel_session_of_argv", "usage_by_target"]

LEDGER_FILE = "usage.sqlite3"
#: the ``api`` of a row that stands for an answer an evaluation took from its answer store (no call made)
STORE_API = "evaluation-store"

#: a Jupyter kernel's connection file, as its launcher names it (``-f .../kernel-<kernel id>.json``)
_CONNECTION_FILE = re.compile(r"kernel-([0-9a-f-]{8,64})\.json$")


def kernel_session(kernel_id: str, pid: int) -> str:
    """The ledger session of the Jupyter kernel ``kernel_id`` running as process ``pid``: the kernel
    computes it for its own calls, the Jupyter server for the completions it makes for that kernel's
    notebook, whether or not qfnb was imported there (a restarted kernel, a new process: a new session)."""
    return hashlib.sha256(f"{kernel_id}:{pid}".encode()).hexdigest()[:12]


def kernel_session_of_argv(argv: list[str], pid: int) -> str | None:
    """:func:`kernel_session` of this process when it is a Jupyter kernel (its command line names its
    connection file ``kernel-<id>.json``), else None."""
    for arg in argv[1:]:
        found = _CONNECTION_FILE.search(arg)
        if found is not None:
            return kernel_session(found.group(1), pid)
    return None


#: the calls that made a model call: not a cache hit (a replay, a reused job), not an evaluation store's answer
_MADE = f"cache_hit = 0 AND api != '{STORE_API}'"


@dataclass(frozen=True)
class TargetUsage:
    """One target and model's sums: model calls (a batch job's answered rows each), prompt and completion tokens."""

    target: str
    model: str
    calls: int
    prompt_tokens: int
    completion_tokens: int


def usage_by_target(data_dir: Path) -> list[TargetUsage]:
    """The ledger of ``data_dir`` summed by target and model (read-only; none when there is no ledger)."""
    path = data_dir / LEDGER_FILE
    if not path.is_file():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)) as db:
            try:
                found = db.execute("SELECT platform, model, SUM(requests), SUM(prompt_tokens), SUM(completion_tokens) "
                                   f"FROM calls WHERE {_MADE} GROUP BY platform, model").fetchall()
            except sqlite3.OperationalError:  # a file from before ``requests``: a row a call
                found = db.execute("SELECT platform, model, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens) "
                                   f"FROM calls WHERE {_MADE} GROUP BY platform, model").fetchall()
    except sqlite3.Error:
        return []
    return [TargetUsage(str(t), str(m), int(c or 0), int(p or 0), int(o or 0)) for t, m, c, p, o in found]
