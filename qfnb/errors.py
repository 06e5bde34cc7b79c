"""qfnb's exceptions (see :mod:`qfnb._core.errors` for the tree)."""

from qfnb._core.errors import (
    AccessTokenExpiredError,
    APIError,
    AuthError,
    ConnectionError,
    InternalServerError,
    InvalidArgumentError,
    PermissionDeniedError,
    QfnbError,
    RateLimitError,
    RequestError,
    ServerOverloadedError,
    StreamError,
    TimeoutError,
    ValidationError,
)
from qfnb.protocol.inference import ProtocolError

__all__ = [
    "APIError",
    "AccessTokenExpiredError",
    "AuthError",
    "ConnectionError",
    "InternalServerError",
    "InvalidArgumentError",
    "PermissionDeniedError",
    "ProtocolError",
    "QfnbError",
    "RateLimitError",
    "RequestError",
    "ServerOverloadedError",
    "StreamError",
    "TimeoutError",
    "ValidationError",
]
