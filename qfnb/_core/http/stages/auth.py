"""The auth stage: each attempt carries its API kind's credentials
(:mod:`qfnb._core.http.auth`); a token the platform rejects (110/111) is refreshed and the
call replayed, once per call (that replay is no retry attempt)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from qfnb._core.errors import AccessTokenExpiredError
from qfnb._core.http.auth import Auth
from qfnb._core.http.call import ApiKind, Call
from qfnb._core.http.stages import Answer, Next

__all__ = ["Authenticate"]

logger = logging.getLogger("qfnb.client")


@dataclass(slots=True, eq=False)
class Authenticate:
    """``strategy(api)`` is the :class:`Auth` for a kind of call (it may raise AuthError)."""

    strategy: Callable[[ApiKind], Auth]

    async def __call__(self, call: Call, next: Next) -> Answer:
        auth = self.strategy(call.api)
        while True:
            call.sent_headers, call.query, used = await auth.apply(call)
            try:
                return await next(call)
            except AccessTokenExpiredError:
                if call.refreshed or used is None or not auth.rejected(used):
                    raise
                call.refreshed = True
                logger.info("access token rejected (110/111); refreshing it and replaying the request")
