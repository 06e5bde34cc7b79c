"""Error codes of the Qianfan wire protocol and the one table of their rules.

:data:`CODE_RULES` says, per v1 ``error_code``, what it means (its :class:`Kind`, hence the
exception class the client raises), whether the official SDK's default retry sets hold it and
whether it is a throttle or a token-expired code. The client's exception mapping
(``qfnb._core.errors``), its retry and batch decisions (``qfnb._core.http.retry``), its default
configuration and its poll loop all read it; nothing else lists codes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum
from types import MappingProxyType


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


class APIErrorCode(Enum):
    """The official SDK's names of the error codes (its ``qianfan.consts.APIErrorCode``)."""

    NoError = ErrorCode.NO_ERROR.value
    UnknownError = ErrorCode.UNKNOWN_ERROR.value
    ServiceUnavailable = ErrorCode.SERVICE_UNAVAILABLE.value
    UnsupportedMethod = ErrorCode.UNSUPPORTED_METHOD.value
    RequestLimitReached = ErrorCode.REQUEST_LIMIT_REACHED.value
    NoPermissionToAccessData = ErrorCode.NO_PERMISSION_TO_ACCESS_DATA.value
    GetServiceTokenFailed = ErrorCode.GET_SERVICE_TOKEN_FAILED.value
    IAMCertificationFailed = ErrorCode.IAM_CERTIFICATION_FAILED.value
    AppNotExist = ErrorCode.APP_NOT_EXIST.value
    DailyLimitReached = ErrorCode.DAILY_LIMIT_REACHED.value
    QPSLimitReached = ErrorCode.QPS_LIMIT_REACHED.value
    TotalRequestLimitReached = ErrorCode.TOTAL_REQUEST_LIMIT_REACHED.value
    InvalidRequest = ErrorCode.INVALID_REQUEST.value
    APITokenInvalid = ErrorCode.API_TOKEN_INVALID.value
    APITokenExpired = ErrorCode.API_TOKEN_EXPIRED.value
    InternalError = ErrorCode.INTERNAL_ERROR.value
    InvalidArgument = ErrorCode.INVALID_ARGUMENT.value
    InvalidJSON = ErrorCode.INVALID_JSON.value
    InvalidParam = ErrorCode.INVALID_PARAM.value
    PermissionError = ErrorCode.PERMISSION_ERROR.value
    APINameNotExist = ErrorCode.API_NAME_NOT_EXIST.value
    ServerHighLoad = ErrorCode.SERVER_HIGH_LOAD.value
    InvalidHTTPMethod = ErrorCode.INVALID_HTTP_METHOD.value
    InvalidArgumentSystem = ErrorCode.INVALID_ARGUMENT_SYSTEM.value
    InvalidArgumentUserSetting = ErrorCode.INVALID_ARGUMENT_USER_SETTING.value
    RPMLimitReached = ErrorCode.RPM_LIMIT_REACHED.value
    TPMLimitReached = ErrorCode.TPM_LIMIT_REACHED.value
    ConsoleInternalError = ErrorCode.CONSOLE_INTERNAL_ERROR.value


class Kind(Enum):
    """What a platform error code means; ``qfnb._core.errors`` raises one exception class per kind."""

    TOKEN_EXPIRED = "access_token_expired"  # refresh the OAuth access token and replay once
    RATE_LIMIT = "rate_limit_exceeded"  # over a quota: a throttle code (a batch slows down)
    OVERLOADED = "server_overloaded"
    INVALID_ARGUMENT = "invalid_argument"
    PERMISSION = "permission_denied"
    INTERNAL = "internal_error"


@dataclass(frozen=True)
class CodeRule:
    """One error code's rules: its kind, and whether the official SDK's default retry sets hold it."""

    kind: Kind
    #: in ``QIANFAN_LLM_API_RETRY_ERR_CODES``'s default (inference calls)
    retry_inference: bool = False
    #: in ``QIANFAN_CONSOLE_API_RETRY_ERR_CODES``'s default (console calls)
    retry_console: bool = False

    @property
    def throttle(self) -> bool:
        """Over a quota: a batch lowers its concurrency (every rate-limit code, and only those)."""
        return self.kind is Kind.RATE_LIMIT

    @property
    def token_expired(self) -> bool:
        return self.kind is Kind.TOKEN_EXPIRED


_E, _K = ErrorCode, Kind
#: THE table of v1 error codes: kind (so exception class), default retries, throttling. Every
#: other code set (retry defaults, throttle and token-expired codes) is derived from it.
CODE_RULES: Mapping[int, CodeRule] = MappingProxyType({
    _E.UNKNOWN_ERROR: CodeRule(_K.INTERNAL),
    _E.SERVICE_UNAVAILABLE: CodeRule(_K.OVERLOADED, retry_inference=True),
    _E.UNSUPPORTED_METHOD: CodeRule(_K.INVALID_ARGUMENT),
    _E.REQUEST_LIMIT_REACHED: CodeRule(_K.RATE_LIMIT),
    _E.NO_PERMISSION_TO_ACCESS_DATA: CodeRule(_K.PERMISSION),
    _E.GET_SERVICE_TOKEN_FAILED: CodeRule(_K.PERMISSION),
    _E.IAM_CERTIFICATION_FAILED: CodeRule(_K.PERMISSION),
    # retried by the official SDK: a new app takes a moment to be known everywhere
    _E.APP_NOT_EXIST: CodeRule(_K.PERMISSION, retry_inference=True),
    _E.DAILY_LIMIT_REACHED: CodeRule(_K.RATE_LIMIT),
    _E.QPS_LIMIT_REACHED: CodeRule(_K.RATE_LIMIT, retry_inference=True, retry_console=True),
    _E.TOTAL_REQUEST_LIMIT_REACHED: CodeRule(_K.RATE_LIMIT),
    _E.INVALID_REQUEST: CodeRule(_K.INVALID_ARGUMENT),
    _E.API_TOKEN_INVALID: CodeRule(_K.TOKEN_EXPIRED),
    _E.API_TOKEN_EXPIRED: CodeRule(_K.TOKEN_EXPIRED),
    _E.INTERNAL_ERROR: CodeRule(_K.INTERNAL),
    _E.INVALID_ARGUMENT: CodeRule(_K.INVALID_ARGUMENT),
    _E.INVALID_JSON: CodeRule(_K.INVALID_ARGUMENT),
    _E.INVALID_PARAM: CodeRule(_K.INVALID_ARGUMENT),
    _E.PERMISSION_ERROR: CodeRule(_K.PERMISSION),
    _E.API_NAME_NOT_EXIST: CodeRule(_K.INVALID_ARGUMENT),
    _E.INVALID_MESSAGES: CodeRule(_K.INVALID_ARGUMENT),
    _E.SERVER_HIGH_LOAD: CodeRule(_K.OVERLOADED, retry_inference=True, retry_console=True),
    _E.INVALID_HTTP_METHOD: CodeRule(_K.INVALID_ARGUMENT),
    _E.INVALID_ARGUMENT_SYSTEM: CodeRule(_K.INVALID_ARGUMENT),
    _E.INVALID_ARGUMENT_USER_SETTING: CodeRule(_K.INVALID_ARGUMENT),
    _E.RPM_LIMIT_REACHED: CodeRule(_K.RATE_LIMIT, retry_inference=True),
    _E.TPM_LIMIT_REACHED: CodeRule(_K.RATE_LIMIT, retry_inference=True),
    _E.CONSOLE_INTERNAL_ERROR: CodeRule(_K.INTERNAL, retry_console=True),
})

#: v2 (OpenAI-style) error codes: the kind each names (the table's kinds are named after them)
V2_CODE_KINDS: Mapping[str, Kind] = MappingProxyType({
    **{kind.value: kind for kind in Kind},
    "invalid_request_error": Kind.INVALID_ARGUMENT,
})


def _codes(keep: Callable[[CodeRule], bool]) -> frozenset[int]:
    return frozenset(int(code) for code, rule in CODE_RULES.items() if keep(rule))


#: Codes retried by default for inference calls (official default: {2, 15, 18, 336100, 336501, 336502}).
RETRYABLE_INFERENCE_CODES: frozenset[int] = _codes(lambda r: r.retry_inference)
#: Codes retried by default for console calls (official default: {18, 336100, 500000}).
RETRYABLE_CONSOLE_CODES: frozenset[int] = _codes(lambda r: r.retry_console)
#: Codes that mean "over a quota": a batch slows down instead of failing.
THROTTLE_CODES: frozenset[int] = _codes(lambda r: r.throttle)
#: Codes meaning "refresh the OAuth access token and replay".
TOKEN_EXPIRED_CODES: frozenset[int] = _codes(lambda r: r.token_expired)
#: HTTP statuses that are transient whatever the body says.
RETRYABLE_HTTP_STATUSES: frozenset[int] = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def transient(code: object) -> bool:
    """Whether a v1 ``code`` is one that trying again can mend (in either default retry set)."""
    rule = CODE_RULES.get(code) if isinstance(code, int) and not isinstance(code, bool) else None
    return rule is not None and (rule.retry_inference or rule.retry_console)


class ProtocolError(ValueError):
    """A request that violates the wire protocol. ``field`` names the offending field."""

    def __init__(self, field: str, message: str, code: int = ErrorCode.INVALID_PARAM) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.code = int(code)
