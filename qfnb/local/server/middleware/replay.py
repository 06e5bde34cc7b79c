"""Refusing replayed bce-auth-v1 signatures on state-changing console calls.

The BCE scheme does not sign the body, so a captured ``Authorization`` could be sent again
with another body while it is valid. The platform remembers each signature a state-changing
call (a create, deploy, import, stop, publish, delete, an object ``PUT``) used until its
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

from qfnb.protocol.platform.netguard import is_loopback
from qfnb.protocol.wires.signing import parse_bce_date

#: v1 console paths whose last segment names a state change (``createTask``, ``service/apply``...)
_V1_CHANGE = re.compile(r"(create|apply|publish|stop|import|release|cancel|delete|update|export(?!record))",
                        re.IGNORECASE)
#: v2 actions that change state
_V2_CHANGE = ("Create", "Delete", "Publish", "Stop", "Update", "Modify", "Cancel", "Start")
#: signatures remembered at most (the oldest expiries go first when full)
MAX_REMEMBERED = 100_000


def changes_state(method: str, path: str, action: str | None) -> bool:
    """Whether a signed request to ``path`` (``Action=action`` on v2) changes the platform's state."""
    if method.upper() in ("PUT", "DELETE"):
        return True
    if path.startswith("/v2/"):
        return bool(action) and str(action).startswith(_V2_CHANGE)
    if path.startswith("/wenxinworkshop/"):
        return bool(_V1_CHANGE.match(path.rstrip("/").rsplit("/", 1)[-1]))
    return False


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
