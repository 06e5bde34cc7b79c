"""qfnb's exceptions (see :mod:`qfnb._core.errors` for the tree).

The official SDK's names are here too, so ``except qfnb.errors.QianfanError`` catches every
qfnb error: ``QianfanError`` is :class:`QfnbError`, ``InternalError`` is
:class:`InternalServerError`, ``RequestTimeoutError`` is :class:`TimeoutError`,
``QianfanRequestError`` is :class:`RequestError`. ``ArgumentNotFoundError``,
``BearerTokenExpiredError``, ``NotImplmentError`` (sic, the official spelling) and
``FileSizeOverflow`` are qfnb classes under the same base.
"""

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


class ArgumentNotFoundError(QfnbError, LookupError):
    """A required argument is missing (the official SDK's name)."""


class BearerTokenExpiredError(AccessTokenExpiredError):
    """The IAM bearer token expired (the official SDK's name)."""


class NotImplmentError(QfnbError, NotImplementedError):
    """Not supported by this backend (spelled as the official SDK spells it)."""


class FileSizeOverflow(QfnbError):
    """A file is too large for the operation."""
