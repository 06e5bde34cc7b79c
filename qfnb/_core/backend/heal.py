"""Bringing the local platform back when its daemon died under a running call.

A call that finds nothing listening at the local platform's URL (the daemon was killed, or
stopped by another shell) asks :func:`revive` once: it finds or starts the data dir's daemon
again, as the first call did. The new daemon takes the same port, so the caller's URL stays
good. Concurrent callers share one start (the start lock).
"""

from __future__ import annotations

import logging

from qfnb._core.backend import daemon
from qfnb._core.backend.discovery import known as known_daemons
from qfnb._core.backend.process import wait_gone

logger = logging.getLogger("qfnb")

#: how long a refused call waits for a daemon whose process has not yet exited (a SIGKILL is not
#: instant on a loaded machine; a SIGTERM first drains its batch rows, up to 5 s) before it starts
#: another: one started sooner finds the data dir still served and exits (the chaos bench saw it)
DYING_WAIT_S = 30.0


def revive(base_url: str) -> bool:
    """Find or start the daemon that served ``base_url``; True when it answers there again
    (False: no daemon of this process was at ``base_url``, or it came back elsewhere)."""
    base = base_url.rstrip("/")
    found = [(root, known.pid) for root, known in list(known_daemons.items()) if known.base_url.rstrip("/") == base]
    if not found:
        return False
    root, pid = found[0]
    # refused while its process may still run: it is going (killed, stopping) and may hold its port
    # a moment longer; the new daemon takes that port, so let the old one go first (unless another
    # caller has already started the new one)
    known = known_daemons.get(root)
    if known is not None and known.pid == pid:
        wait_gone(pid, DYING_WAIT_S)
        if known_daemons.get(root) is known:
            known_daemons.pop(root, None)
    logger.warning("qfnb: the local platform at %s stopped answering; starting it again", base)
    try:
        platform = daemon.ensure_daemon(root, serve_args=daemon.serve_args_of.get(root, ()))
    except daemon.DaemonError as exc:
        logger.warning("qfnb: could not start the local platform again: %s", exc)
        return False
    return platform.base_url.rstrip("/") == base
