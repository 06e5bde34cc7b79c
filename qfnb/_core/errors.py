"""The qfnb exception tree, and the pure mapping from wire errors to it.

::

    QfnbError
    ├── AuthError                        credentials rejected by the OAuth/IAM endpoints
    ├── RequestError(status_code, ...)   an HTTP error status (4xx/5xx) or an unreadable body
    │   └── APIError(error_code, error_msg, request_id)   the platform said no (body code)
    │       ├── AccessTokenExpiredError  110, 111
    │       ├── RateLimitError           4, 17, 18, 19, 336501, 336502; HTTP 429 with a v2 code
    │       ├── ServerOverloadedError    2, 336100
    │       ├── InvalidArgumentError     3, 100, 336001, 336002, 336003, 336005, 336006, 336101, 336104, 336105
    │       │   └── ValidationError (also ValueError, ProtocolError)  bad input, raised before sending
    │       ├── PermissionDeniedError    6, 13, 14, 15, 336004
    │       └── InternalServerError      1, 336000, 500000
    ├── ConnectionError                  the request never got a complete answer (also builtins')
    │   └── TimeoutError                 a request or a poll's deadline passed (also builtins')
    └── StreamError                      a stream ended or broke before its last event

The codes come from the one table, :data:`qfnb.protocol.errors.CODE_RULES` (a test holds this
drawing to it). Messages are built from the platform's own texts and never include keys,
tokens, signatures or headers.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from qfnb.protocol.errors import CODE_RULES, V2_CODE_KINDS, Kind, ProtocolError

# the tree under qfnb's and the official SDK's names: what qfnb.errors (the official
# ``qianfan.errors``) re-exports; the mapping helpers (api_error, KIND_CLASSES) stay off it
__all__ = [
    "APIError",
    "AccessTokenExpiredError",
    "ArgumentNotFoundError",
    "AuthError",
    "BearerTokenExpiredError",
    "ConnectionError",
    "FileSizeOverflow",
    "InternalError",
    "InternalServerError",
    "InvalidArgumentError",
    "NotImplmentError",
    "PermissionDeniedError",
    "ProtocolError",
    "QfnbError",
    "QianfanError",
    "QianfanRequestError",
    "RateLimitError",
    "RequestError",
    "RequestTimeoutError",
    "ServerOverloadedError",
    "StreamError",
    "TimeoutError",
    "ValidationError",
]


class QfnbError(Exception):
    """Base of every error qfnb raises."""


class AuthError(QfnbError):
    """The OAuth / IAM endpoint rejected the credentials (message shows masked keys only)."""


class RequestError(QfnbError):
    """An HTTP error status, or a body that is not the expected JSON."""

    def __init__(self, message: str, *, status_code: int | None = None, body: Any = None,
                 request_id: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        self.status_code = status_code
        self.body = body
        self.request_id = request_id
        #: response headers (the server's; they never carry the client's credentials)
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}
        super().__init__(message)


class APIError(RequestError):
    """The platform answered with an error code in the body (v1) or an error object (v2).

    Also a :class:`RequestError`: the official SDK raises ``RequestError`` for a console call's
    error answer, so ``except RequestError`` written for it catches these."""

    def __init__(self, error_code: int | str, error_msg: str, request_id: str | None = None,
                 *, status_code: int = 200) -> None:
        self.error_code = error_code
        self.error_msg = error_msg
        rid = f" (request id {request_id})" if request_id else ""
        RequestError.__init__(self, f"error code {error_code}: {error_msg}{rid}", status_code=status_code,
                              request_id=request_id)
        self.status_code: int = status_code
        #: the answer's ``Retry-After`` header, when it came with an HTTP error status
        self.retry_after: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_api_error, (type(self), self.error_code, self.error_msg, self.request_id,
                                     self.status_code))


def _rebuild_api_error(cls: type[APIError], code: Any, msg: str, rid: str | None, status: int) -> APIError:
    return cls(code, msg, rid, status_code=status)


class AccessTokenExpiredError(APIError):
    """The OAuth access token is invalid or expired (110/111); qfnb refreshes and replays once."""


class RateLimitError(APIError):
    """QPS / RPM / TPM / daily limit reached (retried with backoff)."""


class ServerOverloadedError(APIError):
    """The service is temporarily unavailable or under high load (retried with backoff)."""


class InvalidArgumentError(APIError):
    """The platform rejected the request's content."""


class ValidationError(InvalidArgumentError, ProtocolError):
    """Bad input, found before anything was sent. ``field`` names the offending field."""

    def __init__(self, field: str, message: str, code: int = 336003) -> None:
        ProtocolError.__init__(self, field, message, code)
        # an InvalidArgumentError too (the official SDK's class for bad arguments), with its fields
        self.error_code, self.error_msg, self.request_id, self.status_code = code, message, None, 0
        self.body, self.headers, self.retry_after = None, {}, None

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.field, self.error_msg, self.code))


class PermissionDeniedError(APIError):
    """No permission for this resource, or IAM authentication failed."""


class InternalServerError(APIError):
    """The platform failed internally."""


class ConnectionError(QfnbError, builtins.ConnectionError):
    """The connection failed or dropped before a complete response arrived.

    Also the built-in ``ConnectionError``, so ``except ConnectionError`` catches it either way."""


class TimeoutError(ConnectionError, builtins.TimeoutError):
    """A request, or a wait for a platform task, timed out (also the built-in ``TimeoutError``)."""


class StreamError(QfnbError):
    """A stream broke off (connection cut, bad event) before its final event.

    ``retryable``: the server said the break was on its side (an SSE ``error`` event, e.g. its
    engine failed mid-answer), so making the call again is safe; ``error_code`` is its code.
    ``cut``: the connection dropped or went silent (no event from the server said why)."""

    retryable: bool = False
    error_code: int | str | None = None
    cut: bool = False


#: the exception class of each kind of platform error (the codes of each kind: CODE_RULES)
KIND_CLASSES: Mapping[Kind, type[APIError]] = {
    Kind.TOKEN_EXPIRED: AccessTokenExpiredError,
    Kind.RATE_LIMIT: RateLimitError,
    Kind.OVERLOADED: ServerOverloadedError,
    Kind.INVALID_ARGUMENT: InvalidArgumentError,
    Kind.PERMISSION: PermissionDeniedError,
    Kind.INTERNAL: InternalServerError,
}


def api_error(error_code: Any, error_msg: Any, request_id: str | None = None, *,
              status_code: int = 200) -> APIError:
    """The exception for a platform error code (int for v1, str for v2); pure."""
    msg = str(error_msg or "")
    if isinstance(error_code, int) and not isinstance(error_code, bool):
        rule = CODE_RULES.get(error_code)
        cls = KIND_CLASSES[rule.kind] if rule is not None else APIError
        return cls(error_code, msg, request_id, status_code=status_code)
    code = str(error_code)
    if code.isdigit():
        return api_error(int(code), msg, request_id, status_code=status_code)
    kind = V2_CODE_KINDS.get(code.lower())
    cls = KIND_CLASSES[kind] if kind is not None else APIError
    if cls is APIError and status_code == 429:
        cls = RateLimitError
    return cls(code, msg, request_id, status_code=status_code)


# the official SDK's own classes (qfnb.errors re-exports them)
class ArgumentNotFoundError(QfnbError, LookupError):
    """A required argument is missing (the official SDK's name)."""


class BearerTokenExpiredError(AccessTokenExpiredError):
    """The IAM bearer token expired (the official SDK's name)."""


class NotImplmentError(QfnbError, NotImplementedError):
    """Not supported by this backend (spelled as the official SDK spells it)."""


class FileSizeOverflow(QfnbError):
    """A file is too large for the operation."""


# the official SDK's names for qfnb's classes
QianfanError = QfnbError
InternalError = InternalServerError
RequestTimeoutError = TimeoutError
QianfanRequestError = RequestError
