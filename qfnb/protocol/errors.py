"""Error codes of the Qianfan wire protocol (v1 body ``error_code`` values)."""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """Numeric ``error_code`` values that v1 endpoints return in an HTTP 200 body."""

    NO_ERROR = 0
    UNKNOWN_ERROR = 1
    SERVICE_UNAVAILABLE = 2
    UNSUPPORTED_METHOD = 3
    REQUEST_LIMIT_REACHED = 4
    NO_PERMISSION_TO_ACCESS_DATA = 6
    GET_SERVICE_TOKEN_FAILED = 13
    IAM_CERTIFICATION_FAILED = 14
    APP_NOT_EXIST = 15
    DAILY_LIMIT_REACHED = 17
    QPS_LIMIT_REACHED = 18
    TOTAL_REQUEST_LIMIT_REACHED = 19
    INVALID_REQUEST = 100
    API_TOKEN_INVALID = 110
    API_TOKEN_EXPIRED = 111
    INTERNAL_ERROR = 336000
    INVALID_ARGUMENT = 336001
    INVALID_JSON = 336002
    INVALID_PARAM = 336003
    PERMISSION_ERROR = 336004
    API_NAME_NOT_EXIST = 336005
    INVALID_MESSAGES = 336006
    SERVER_HIGH_LOAD = 336100
    INVALID_HTTP_METHOD = 336101
    INVALID_ARGUMENT_SYSTEM = 336104
    INVALID_ARGUMENT_USER_SETTING = 336105
    RPM_LIMIT_REACHED = 336501
    TPM_LIMIT_REACHED = 336502
    CONSOLE_INTERNAL_ERROR = 500000


#: Codes the platform documents as transient for inference calls (official default).
RETRYABLE_INFERENCE_CODES: frozenset[int] = frozenset({2, 15, 18, 336100, 336501, 336502})
#: Codes retried for console calls.
RETRYABLE_CONSOLE_CODES: frozenset[int] = frozenset({18, 336100, 500000})
#: Codes meaning "refresh the OAuth access token and replay".
TOKEN_EXPIRED_CODES: frozenset[int] = frozenset({110, 111})
#: HTTP statuses that are transient whatever the body says.
RETRYABLE_HTTP_STATUSES: frozenset[int] = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class ProtocolError(ValueError):
    """A request that violates the wire protocol. ``field`` names the offending field."""

    def __init__(self, field: str, message: str, code: int = ErrorCode.INVALID_PARAM) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.code = int(code)
