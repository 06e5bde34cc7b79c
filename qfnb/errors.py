"""qfnb's exceptions (see :mod:`qfnb._core.errors` for the tree).

The official SDK's names are here too, so ``except qfnb.errors.QianfanError`` catches every
qfnb error: ``QianfanError`` is :class:`QfnbError`, ``InternalError`` is
:class:`InternalServerError`, ``RequestTimeoutError`` is :class:`TimeoutError`,
``QianfanRequestError`` is :class:`RequestError`. ``ArgumentNotFoundError``,
``BearerTokenExpiredError``, ``NotImplmentError`` (sic, the official spelling) and
``FileSizeOverflow`` are qfnb classes under the same base (defined with the tree).
"""

from qfnb._core.errors import (
    AccessTokenExpiredError,
    APIError,
    ArgumentNotFoundError,
    AuthError,
    BearerTokenExpiredError,
    ConnectionError,
    FileSizeOverflow,
    InternalServerError,
    InvalidArgumentError,
    NotImplmentError,
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

#: the official SDK's names for qfnb's classes
QianfanError = QfnbError
InternalError = InternalServerError
RequestTimeoutError = TimeoutError
QianfanRequestError = RequestError
