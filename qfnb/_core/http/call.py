"""``Call``: one logical API call, everything the send pipeline needs to (re)send it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from qfnb._core.transport import safe_path
from qfnb.protocol.wires.codec import fastjson

if TYPE_CHECKING:
    from qfnb._core.http.recording.recorded import Recording
    from qfnb._core.http.retry import RetryPolicy

__all__ = ["ApiKind", "Call"]

#: which API a call belongs to; it picks the auth scheme (see :mod:`qfnb._core.http.auth`)
ApiKind = Literal["infer", "v2", "console", "raw"]


class Call:
    """A request before authentication: method, URL (no query), JSON or raw body, headers,
    query ``params``, its API kind and whether the answer is streamed; then what the stages of
    :mod:`qfnb._core.http.stages` read and note on it: the retry ``policy``, the estimated
    ``tokens`` (rate limits), the model call's ``record`` (cache, budget, ledger; None for
    console calls), this call's one-off recoveries and one attempt's auth headers and query."""

    __slots__ = ("api", "attempt", "content", "headers", "method", "octets", "params", "path", "policy", "query",
                 "record", "refreshed", "reply_headers", "revived", "sent_headers", "stream", "tokens", "url")

    def __init__(self, method: str, url: str, body: Any, headers: dict[str, str], params: dict[str, Any] | None,
                 api: ApiKind, stream: bool = False, *, policy: RetryPolicy | None = None, tokens: int = 0,
                 record: Recording | None = None, octets: bool = False) -> None:
        self.method = method
        self.url = url
        self.content = b"" if body is None else (body if isinstance(body, bytes) else fastjson.dumps_ascii(body))
        self.headers = headers
        self.params = params
        self.api: ApiKind = api
        self.stream = stream
        self.path = safe_path(url)
        self.policy = policy
        self.tokens = tokens
        self.record = record
        self.octets = octets  # a 2xx answer is data (a file's bytes), never read as JSON
        self.attempt = 1  # the 1-based attempt under way (the retry stage counts)
        self.refreshed = False  # a rejected token was refreshed (once per call)
        self.revived = False  # the local daemon was found or started again (once per call)
        self.sent_headers: Mapping[str, str] = headers  # this attempt's, auth included
        self.query = ""  # this attempt's encoded query, auth included
        self.reply_headers: Mapping[str, str] | None = None  # the last answer's headers

    @property
    def request_id(self) -> str | None:
        return self.headers.get("Request_id")

    def __repr__(self) -> str:
        return f"Call({self.api} {self.method} {self.path})"
