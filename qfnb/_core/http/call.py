"""``Call``: one logical API call, everything needed to (re)send it on each attempt."""

from __future__ import annotations

import json
from typing import Any, Literal

from qfnb._core.transport import safe_path

__all__ = ["ApiKind", "Call"]

#: which API a call belongs to; it picks the auth scheme (see :mod:`qfnb._core.http.auth`)
ApiKind = Literal["infer", "v2", "console", "raw"]


class Call:
    """A request before authentication: method, URL (no query), JSON or raw body, headers,
    query ``params``, its API kind and whether the answer is streamed."""

    __slots__ = ("api", "content", "headers", "method", "params", "path", "stream", "url")

    def __init__(self, method: str, url: str, body: Any, headers: dict[str, str], params: dict[str, Any] | None,
                 api: ApiKind, stream: bool = False) -> None:
        self.method = method
        self.url = url
        self.content = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.headers = headers
        self.params = params
        self.api: ApiKind = api
        self.stream = stream
        self.path = safe_path(url)

    @property
    def request_id(self) -> str | None:
        return self.headers.get("Request_id")

    def __repr__(self) -> str:
        return f"Call({self.api} {self.method} {self.path})"
