"""Refusing replayed bce-auth-v1 signatures on state-changing console calls.

The BCE scheme does not sign the body, so a captured ``Authorization`` could be sent again
with another body while it is valid. The platform remembers each signature a state-changing
call (any but a read or a model call: a create, deploy, import, stop, publish, delete, annotation,
reward, an object ``PUT`` or append) used until its
validity ends, and refuses it a second time with HTTP 409 ``RequestReplayed`` and
``Retry-After: 1``: a client that signs each try anew (qfnb, the official SDK) gets a new
signature on its retry; a replayer cannot make one. qfnb signs a unique ``x-bce-request-id``
into each call, so two of its calls never share a signature.

Only requests that crossed a network are checked: reading loopback traffic takes the
privileges that read the keys themselves, and clients that sign no unique header (the
official SDK) may make two identical-looking calls within one second.
"""

from __future__ import annotations

import re
import threading
import time

from starlette.requests import HTTPConnection

from qfnb.local.server.middleware.heartbeat import asks_model
from qfnb.protocol.platform.netguard import is_loopback
from qfnb.protocol.wires.qianfan.signing import parse_bce_date

#: v1 console paths whose last segment names a read (``jobDetail``, ``service/list``, ``dataset/info``...)
_V1_READ = re.compile(r".*detail|.*list|info|report|exportrecord", re.IGNORECASE)
#: v2 actions that read (``DescribeDatasets``...)
_V2_READ = ("Describe", "List", "Get", "Query")
#: signatures remembered at most (the oldest expiries go first when full)
MAX_REMEMBERED = 100_000


def changes_state(method: str, path: str, action: str | None) -> bool:
    """Whether a signed request to ``path`` (``Action=action`` on v2) changes the platform's state: every
    call but a read (``GET``, a v1 console read, a v2 ``Describe…`` action) and a model call. Reads are
    named, not changes: a change the list missed (an annotation, a reward, an append) would take a
    replayed signature with another body."""
    if method.upper() in ("GET", "HEAD", "OPTIONS"):
        return False
    if method.upper() != "POST":
        return True
    if path.startswith("/wenxinworkshop/"):
        return not _V1_READ.fullmatch(path.rstrip("/").rsplit("/", 1)[-1])
    if asks_model("POST", path):
        return False
    return not (path.startswith("/v2/") and bool(action) and str(action).startswith(_V2_READ))


def from_loopback(request: HTTPConnection) -> bool:
    """Whether the request came from this machine's loopback interface and was not forwarded from
    another address (a local proxy, ``qfnb proxy --direct``, says so in ``X-Forwarded-For``: a header
    anyone can add only makes the check stricter)."""
    client = request.client
    return client is not None and is_loopback(client.host) and not request.headers.get("x-forwarded-for")


class ReplayCache:
    """Signatures already used, each until its validity (timestamp + expiration + skew) ends."""

    def __init__(self, skew: float = 300.0) -> None:
        self._seen: dict[str, float] = {}
        self._skew = skew
        self._lock = threading.Lock()

    def first_use(self, signature: str, timestamp: str, expiration: int) -> bool:
        """Record ``signature``; False when it was already used and is still valid (a replay)."""
        moment = time.time()
        until = parse_bce_date(timestamp).timestamp() + expiration + self._skew
        with self._lock:
            seen = self._seen.get(signature)
            if seen is not None and seen >= moment:
                return False
            if len(self._seen) >= MAX_REMEMBERED:
                self._seen = {s: t for s, t in self._seen.items() if t >= moment}
                if len(self._seen) >= MAX_REMEMBERED:  # all still valid: forget the soonest to expire
                    for s, _ in sorted(self._seen.items(), key=lambda kv: kv[1])[: MAX_REMEMBERED // 10]:
                        del self._seen[s]
            self._seen[signature] = until
            return True
