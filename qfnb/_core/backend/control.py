"""The daemon's control calls, sent through the transport seam (:mod:`qfnb._core.transport`).

``GET /healthz`` (does it answer), ``GET /qfnb/status`` and ``POST /qfnb/shutdown`` (both need
the runtime file's token in ``X-Qfnb-Control``). The callers are synchronous (configuration
resolution, the CLI, a UI thread), so each call runs on a short-lived event loop of its own —
on a helper thread when the calling thread already runs one. Failures are qfnb's
:class:`~qfnb.errors.ConnectionError` / :class:`~qfnb.errors.TimeoutError`, as for every call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import urlencode

from qfnb._core.errors import ConnectionError
from qfnb._core.transport import Reply, Request, Transport, json_or_none
from qfnb.protocol.platform.daemon import CONTROL_HEADER, SHUTDOWN_ROUTE, STATUS_ROUTE, EngineState, RuntimeInfo

__all__ = ["Control", "default_transport"]

T = TypeVar("T")


def default_transport() -> Transport:
    """httpx's transport with a tiny pool (one short-lived loop per call: nothing to share)."""
    from qfnb._core.transport.httpx import HttpxTransport  # deferred: loads httpx (`qfnb.ChatCompletion` does not)

    return HttpxTransport(max_connections=2)


def _blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to the end from synchronous code, whether or not this thread runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="qfnb-control") as pool:
        return pool.submit(asyncio.run, coro).result()


class Control:
    """The control routes of the daemon that ``info`` (its runtime file) describes."""

    def __init__(self, info: RuntimeInfo, transport: Transport | None = None) -> None:
        self.info = info
        self.transport = transport or default_transport()

    def _call(self, method: str, path: str, *, timeout: float, params: dict[str, str] | None = None,
              token: bool = True, body: bytes = b"") -> Reply:
        url = self.info.url + path + (f"?{urlencode(params)}" if params else "")
        headers = {CONTROL_HEADER: self.info.control_token} if token else {}
        if body:
            headers["Content-Type"] = "application/json"
        request = Request(method, url, headers, body, timeout)

        async def send() -> Reply:
            try:
                return await self.transport.send(request)
            finally:
                await self.transport.aclose()

        return _blocking(send())

    def answers(self, timeout: float = 3.0) -> bool:
        """Whether the daemon answers its health check."""
        try:
            return self._call("GET", "/healthz", timeout=timeout, token=False).status_code == 200
        except ConnectionError:
            return False

    def status(self, timeout: float = 5.0) -> dict[str, Any]:
        """``GET /qfnb/status``: what the daemon says about itself."""
        body = json_or_none(self._call("GET", STATUS_ROUTE, timeout=timeout).content)
        return body if isinstance(body, dict) else {}

    def shutdown(self, *, force: bool = False, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
        """``POST /qfnb/shutdown``: its HTTP status (409: jobs run, refused) and body."""
        reply = self._call("POST", SHUTDOWN_ROUTE, timeout=timeout, params={"force": "1"} if force else None)
        body = json_or_none(reply.content)
        return reply.status_code, body if isinstance(body, dict) else {}

    def call(self, method: str, path: str, payload: Any = None, *, timeout: float = 600.0) -> tuple[int, Any]:
        """A control route with a JSON body (the model store's): its HTTP status and JSON answer."""
        body = json.dumps(payload).encode() if payload is not None else b""
        reply = self._call(method, path, timeout=timeout, body=body)
        return reply.status_code, json_or_none(reply.content)

    def engines(self, timeout: float = 0.5) -> list[EngineState] | None:
        """The engines of the status route; None when unknown (an error, an older daemon)."""
        try:
            reply = self._call("GET", STATUS_ROUTE, timeout=timeout)
        except ConnectionError:
            return None
        body = json_or_none(reply.content) if reply.status_code == 200 else None
        engines = body.get("engines") if isinstance(body, dict) else None
        if not isinstance(engines, list):
            return None
        return [e for e in map(EngineState.from_dict, engines) if e is not None]
