"""What ``Model`` and ``Service`` share about waiting for a platform job: the poll tick, the
wait limit, the job error, and the ``result`` of a console answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from qfnb._core.errors import QfnbError

#: Called between polls; raising from it (e.g. on stop) aborts the wait.
Tick = Callable[[dict[str, Any]], Awaitable[None]]
#: how long a publish, deploy or batch run may take before the wait gives up
WAIT_LIMIT_S = 6 * 3600.0


class PlatformJobError(QfnbError):
    """A platform job (publish, deploy) ended in failure."""


async def no_tick(_: dict[str, Any]) -> None:
    """The default :data:`Tick`: nothing between polls."""


def result_of(resp: Any) -> dict[str, Any]:
    """A console answer's ``result`` object (``{}`` when it has none)."""
    value = resp.body.get("result")
    return dict(value) if isinstance(value, dict) else {}
