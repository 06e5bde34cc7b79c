"""The ``Idempotency-Key`` of a ``%%qfchat`` cell's call: a re-run cell attaches to its own unfinished work.

A cell whose answer the kernel gave up on (its client timed out, the connection dropped) leaves the
call running on the local platform, which keeps a keyed call's work for ``QFNB_RETRY_GRACE_S`` (30 s)
and then its answer for 10 minutes. Re-running the cell should pick that work up, not start it over:
so the call's key is derived from what makes it *the same call*, not drawn anew per run.

Which identity is the right one:

- **the kernel** (a token drawn once per kernel process): another notebook asking the same thing is
  another user's call and gets its own sample; a restarted kernel starts over (its sessions did too);
- **the cell's place in its session** (the session's name and how many exchanges it held; in a
  session the platform keeps, ``-s NAME``, the stored turns before it): the same prompt later in
  the conversation is another question, even where the history sent is cut to ``max_history`` turns;
- **the request** (model or endpoint, the messages with the history sent, or a kept session's turn
  and the stored turn it follows, the system prompt, every sampling option, ``--json``/``--schema``'s
  format, streamed or not): a different prompt or sampling is a different call. The platform would
  refuse a key reused for another request anyway (422);
- **the run**: a call whose answer arrived in full, or that its user stopped (Interrupt: the client
  withdraws it, ``DELETE /qfnb/calls/{key}``), is never asked for again under its key: the cell's
  next run is a new call with a new key, so a re-run at ``temperature > 0`` draws a new sample rather
  than the stored one, and ``--fresh`` always makes a new key (ask again, even after a failed run).

So only a run the kernel gave up on (an error: a timeout, a dropped connection) hands its key to the
next run of the same cell. Nothing is sent for this: the key is a header of the call itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

__all__ = ["CellKeys"]

#: the calls whose ended runs a kernel remembers (the oldest is forgotten first: by then the
#: platform, which keeps an answer 10 minutes, has long forgotten its key too)
MAX_REMEMBERED = 4096


class CellKeys:
    """The keys of one kernel's ``%%qfchat`` calls (see the module's docstring)."""

    def __init__(self) -> None:
        self.kernel = secrets.token_hex(8)
        #: a call's identity -> how many of its runs are over (its next run's key counts them)
        self._runs: OrderedDict[str, int] = OrderedDict()

    def identity(self, *, session: str | None, place: int, request: dict[str, Any]) -> str:
        """What makes a cell's call the same call: this kernel, the session and the cell's ``place``
        in it (exchanges before it), and the ``request`` (everything sent that decides the answer)."""
        made = json.dumps([self.kernel, session, place, request], sort_keys=True, default=str, ensure_ascii=True)
        return hashlib.sha256(made.encode()).hexdigest()[:32]

    def key(self, identity: str, *, fresh: bool = False) -> str:
        """The key of this run of the call ``identity``: the last run's while that one is not over
        (see :meth:`run`); a new one after it, or with ``fresh`` (``--fresh``)."""
        if fresh:
            self._count(identity)
        return f"qfnb-cell-{identity}-{self._runs.get(identity, 0)}"

    @contextlib.contextmanager
    def run(self, identity: str) -> Iterator[None]:
        """One run of the call ``identity``: its key is done with when the run gets its whole answer or
        its caller stops it (Interrupt, a closed stream); after an error (a timeout, a dropped
        connection) the cell's next run has the same key, and attaches."""
        try:
            yield
        except Exception:
            raise
        except BaseException:  # stopped on purpose (a cancel, GeneratorExit): a re-run asks anew
            self.done(identity)
            raise
        self.done(identity)

    def done(self, identity: str) -> None:
        """The run of ``identity`` is over for good: the next run is a new call."""
        self._count(identity)

    def _count(self, identity: str) -> None:
        self._runs[identity] = self._runs.get(identity, 0) + 1
        self._runs.move_to_end(identity)
        while len(self._runs) > MAX_REMEMBERED:
            self._runs.popitem(last=False)
