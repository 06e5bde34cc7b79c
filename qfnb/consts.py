"""The official SDK's ``qianfan.consts``: error codes, environment variable names, API paths,
defaults and the prompt enumerations, under the official names.

The values are qfnb's own (:mod:`qfnb.protocol.routes`, :class:`qfnb._core.config.Config`'s
defaults), so the names here never disagree with what qfnb sends.
"""

from __future__ import annotations

import enum
from pathlib import Path

from qfnb.protocol import routes
from qfnb.protocol.errors import RETRYABLE_CONSOLE_CODES, RETRYABLE_INFERENCE_CODES
from qfnb.protocol.model_names import V2_DEFAULT_MODEL
from qfnb.protocol.version import __version__
from qfnb.resources.console.consts import PromptFrameworkType, PromptSceneType, PromptScoreStandard, PromptType

#: qfnb's version (the official module re-exports its own here)
VERSION = __version__

__all__ = [
    "VERSION",
    "APIErrorCode",
    "Consts",
    "DefaultLLMModel",
    "DefaultValue",
    "Env",
    "PromptFrameworkType",
    "PromptSceneType",
    "PromptScoreStandard",
    "PromptType",
]


class APIErrorCode(enum.Enum):
    """Error codes of the platform's answers (``error_code``)."""

    NoError = 0
    UnknownError = 1
    ServiceUnavailable = 2
    UnsupportedMethod = 3
    RequestLimitReached = 4
    NoPermissionToAccessData = 6
    GetServiceTokenFailed = 13
    IAMCertificationFailed = 14
    AppNotExist = 15
    DailyLimitReached = 17
    QPSLimitReached = 18
    TotalRequestLimitReached = 19
    InvalidRequest = 100
    APITokenInvalid = 110
    APITokenExpired = 111
    InternalError = 336000
    InvalidArgument = 336001
    InvalidJSON = 336002
    InvalidParam = 336003
    PermissionError = 336004
    APINameNotExist = 336005
    ServerHighLoad = 336100
    InvalidHTTPMethod = 336101
    InvalidArgumentSystem = 336104
    InvalidArgumentUserSetting = 336105
    RPMLimitReached = 336501
    TPMLimitReached = 336502
    ConsoleInternalError = 500000


class Env:
    """Names of the environment variables qfnb reads (the official spellings)."""

    AK = "QIANFAN_AK"
    SK = "QIANFAN_SK"
    AccessKey = "QIANFAN_ACCESS_KEY"
    SecretKey = "QIANFAN_SECRET_KEY"
    AccessToken = "QIANFAN_ACCESS_TOKEN"
    BaseURL = "QIANFAN_BASE_URL"
    DisableErnieBotSDK = "QIANFAN_DISABLE_EB_SDK"
    AuthTimeout = "QIANFAN_AUTH_TIMEOUT"
    IAMSignExpirationSeconds = "QIANFAN_IAM_SIGN_EXPIRATION_SEC"
    ConsoleAPIBaseURL = "QIANFAN_CONSOLE_API_BASE_URL"
    IAMBaseURL = "QIANFAN_IAM_BASE_URL"
    AccessTokenRefreshMinInterval = "QIANFAN_ACCESS_TOKEN_REFRESH_MIN_INTERVAL"
    InferResourceRefreshMinInterval = "QIANFAN_INFER_RESOURCE_REFRESH_MIN_INTERVAL"
    EnablePrivate = "QIANFAN_ENABLE_PRIVATE"
    AccessCode = "QIANFAN_PRIVATE_ACCESS_CODE"
    QpsLimit = "QIANFAN_QPS_LIMIT"
    RpmLimit = "QIANFAN_RPM_LIMIT"
    TpmLimit = "QIANFAN_TPM_LIMIT"
    DotEnvConfigFile = "QIANFAN_DOT_ENV_CONFIG_FILE"
    ImportStatusPollingInterval = "QIANFAN_IMPORT_STATUS_POLLING_INTERVAL"
    ExportStatusPollingInterval = "QIANFAN_EXPORT_STATUS_POLLING_INTERVAL"
    ReleaseStatusPollingInterval = "QIANFAN_RELEASE_STATUS_POLLING_INTERVAL"
    ExportFileSizeLimit = "QIANFAN_EXPORT_FILE_SIZE_LIMIT"
    ETLStatusPollingInterval = "QIANFAN_ETL_STATUS_POLLING_INTERVAL"
    GetEntityContentFailedRetryTimes = "QIANFAN_GET_ENTITY_CONTENT_FAILED_RETRY_TIMES"
    RetryCount = "QIANFAN_LLM_API_RETRY_COUNT"
    RetryTimeout = "QIANFAN_LLM_API_RETRY_TIMEOUT"
    RetryBackoffFactor = "QIANFAN_LLM_API_RETRY_BACKOFF_FACTOR"
    ConsoleRetryCount = "QIANFAN_CONSOLE_API_RETRY_COUNT"
    ConsoleRetryTimeout = "QIANFAN_CONSOLE_API_RETRY_TIMEOUT"
    ConsoleRetryBackoffFactor = "QIANFAN_CONSOLE_API_RETRY_BACKOFF_FACTOR"
    CacheDir = "QIANFAN_CACHE_DIR"
    DisableCache = "QIANFAN_DISABLE_CACHE"
    SSLVerificationEnabled = "QIANFAN_SSL_VERIFICATION_ENABLED"
    Proxy = "QIANFAN_PROXY"
    FileEncoding = "QIANFAN_FILE_ENCODING"


class Consts:
    """API paths, console actions and header names."""

    ModelAPIPrefix = routes.MODEL_API_PREFIX
    AuthAPI = routes.OAUTH_TOKEN
    IAMBearerTokenAPI = routes.BEARER_TOKEN
    ChatV2API = routes.CHAT_V2
    ConsoleAPIQueryAction = "Action"
    FineTuneCreateTaskAPI = routes.Console.FT_CREATE_TASK
    FineTuneCreateJobAPI = routes.Console.FT_CREATE_JOB
    FineTuneGetJobAPI = routes.Console.FT_JOB_DETAIL
    FineTuneStopJobAPI = routes.Console.FT_STOP_JOB
    FineTuneCreateJobAction = routes.V2Action.CREATE_JOB
    FineTuneCreateTaskAction = routes.V2Action.CREATE_TASK
    FineTuneJobListAction = routes.V2Action.DESCRIBE_JOBS
    FineTuneTaskListAction = routes.V2Action.DESCRIBE_TASKS
    FineTuneTaskDetailAction = routes.V2Action.DESCRIBE_TASK
    FineTuneStopTaskAction = routes.V2Action.STOP_TASK
    FineTuneSupportedModelsAction = routes.V2Action.SUPPORTED_MODELS
    ModelDescribeModelSetAction = routes.V2Action.DESCRIBE_MODEL_SET
    ModelDescribeModelAction = routes.V2Action.DESCRIBE_MODEL
    ServiceCreateAction = routes.V2Action.CREATE_SERVICE
    ServiceDetailAction = routes.V2Action.DESCRIBE_SERVICE
    ServiceListAction = routes.V2Action.DESCRIBE_SERVICES
    ModelDetailAPI = routes.Console.MODEL_DETAIL
    ModelVersionDetailAPI = routes.Console.MODEL_VERSION_DETAIL
    ModelPublishAPI = routes.Console.MODEL_PUBLISH
    ModelEvalCreateAPI = routes.Console.EVAL_CREATE
    ModelEvalInfoAPI = routes.Console.EVAL_DETAIL
    ModelEvalResultAPI = routes.Console.EVAL_REPORT
    ModelEvalStopAPI = routes.Console.EVAL_CANCEL
    ServiceCreateAPI = routes.Console.SERVICE_APPLY
    ServiceDetailAPI = routes.Console.SERVICE_DETAIL
    ServiceListAPI = routes.Console.SERVICE_LIST
    DatasetCreateAPI = routes.Console.DATASET_CREATE
    DatasetReleaseAPI = routes.Console.DATASET_RELEASE
    DatasetImportAPI = routes.Console.DATASET_IMPORT
    DatasetInfoAPI = routes.Console.DATASET_INFO
    DatasetExportAPI = routes.Console.DATASET_EXPORT
    DatasetDeleteAPI = routes.Console.DATASET_DELETE
    DatasetExportRecordAPI = routes.Console.DATASET_EXPORT_RECORD
    FineTuneV2BaseRouteAPI = routes.Console.V2_FINETUNING
    ModelV2BaseRouteAPI = routes.Console.V2_MODEL
    ServiceV2BaseRouteAPI = routes.Console.V2_SERVICE
    DatasetV2BaseRouteAPI = routes.Console.V2_DATASET
    XRequestID = "Request_id"
    XResponseID = "X-Baidu-Request-Id"
    QianfanRequestIdDefaultPrefix = f"sdk-py-{__version__}"


class DefaultValue:
    """Defaults (the same as :class:`qfnb._core.config.Config`'s)."""

    AK = ""
    SK = ""
    AccessToken = ""
    BaseURL = routes.DEFAULT_BASE_URL
    ModelAPIPrefix = routes.MODEL_API_PREFIX
    AuthTimeout = 5.0
    DisableErnieBotSDK = True
    IAMSignExpirationSeconds = 300
    ConsoleAPIBaseURL = routes.DEFAULT_CONSOLE_BASE_URL
    IAMBaseURL = routes.DEFAULT_IAM_BASE_URL
    AccessTokenRefreshMinInterval = 3600.0
    BearerTokenExpiredInterval = 43200
    RetryCount = 3
    RetryTimeout = 300.0
    RetryBackoffFactor = 1.0
    RetryJitter = 1.0
    RetryMaxWaitInterval = 120.0
    RetryErrCodes = RETRYABLE_INFERENCE_CODES
    ConsoleRetryCount = 1
    ConsoleRetryTimeout = 60.0
    ConsoleRetryBackoffFactor = 0.0
    ConsoleRetryJitter = 1.0
    ConsoleRetryMaxWaitInterval = 120.0
    ConsoleRetryErrCodes = RETRYABLE_CONSOLE_CODES
    QpsLimit = 0.0
    RpmLimit = 0.0
    TpmLimit = 0
    DotEnvConfigFile = ".env"
    EnablePrivate = False
    AccessCode = ""
    TruncatedContinuePrompt = "继续"
    ImportStatusPollingInterval = 2.0
    ExportStatusPollingInterval = 2.0
    ReleaseStatusPollingInterval = 2.0
    ETLStatusPollingInterval = 2.0
    TrainStatusPollingInterval = 30.0
    ModelPublishStatusPollingInterval = 30.0
    DeployStatusPollingInterval = 30.0
    EvaluationOnlinePollingInterval = 30.0
    BatchRunStatusPollingInterval = 30.0
    DefaultFinetuneTrainType = "ERNIE-Speed"
    ExportFileSizeLimit = 2 * 1024**3
    GetEntityContentFailedRetryTimes = 3
    BosHostRegion = "bj"
    SSLVerificationEnabled = True
    Proxy = ""
    FileEncoding = "utf-8"
    CacheDir = str(Path.home() / ".qianfan_cache")
    DisableCache = False
    ChatV2ApiRoute = routes.CHAT_V2


class DefaultLLMModel:
    """Default model of each resource."""

    Completion = "ERNIE-Lite-8K"
    ChatCompletion = "ERNIE-Lite-8K"
    Embedding = "Embedding-V1"
    Text2Image = "Stable-Diffusion-XL"
    ChatCompletionV2 = V2_DEFAULT_MODEL
