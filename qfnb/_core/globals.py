"""The official SDK's process-wide switches: its logging switches, ``qfnb.enable_log()`` and
``qfnb.disable_log()``, its ``log_*`` helpers on the ``qfnb`` logger (:mod:`qfnb.utils.logging`
re-exports them) and its credential setters, ``qfnb.AK("...")`` & co., on the settings object
(:func:`qfnb._core.config.get_config`; :mod:`qfnb.config` re-exports them), and the small helpers of
the official ``qianfan.utils.utils`` (random ids, installed packages, name cases; :mod:`qfnb.utils.utils`
re-exports them).
"""

from __future__ import annotations

import importlib.util
import logging
import re
import secrets
import string
from pathlib import Path
from typing import Any

from qfnb._core.config import UNUSED_SETTINGS, Config, get_config

__all__ = ["AK", "SK", "AccessKey", "AccessToken", "DefaultValue", "Env", "SecretKey", "assert_package_installed",
           "camel_to_snake", "check_package_installed", "disable_log", "enable_log", "encoding", "first_lower_case",
           "generate_letter_num_random_id", "log_debug", "log_error", "log_info", "log_trace", "log_warn", "logger",
           "snake_to_camel"]


def enable_log(log_level: int | str = logging.INFO) -> None:
    """Set the level of the ``qfnb`` logger (and give it a stderr handler if it has none)."""
    log = logging.getLogger("qfnb")
    log.setLevel(log_level)
    if not log.handlers and not logging.getLogger().handlers:
        log.addHandler(logging.StreamHandler())


def disable_log() -> None:
    """Silence qfnb's logging below CRITICAL."""
    logging.getLogger("qfnb").setLevel(logging.CRITICAL)


#: the logger every qfnb module logs under
logger = logging.getLogger("qfnb")


def log_info(message: object, *args: Any) -> None:
    logger.info(message, *args, stacklevel=2)


def log_debug(message: object, *args: Any) -> None:
    logger.debug(message, *args, stacklevel=2)


def log_trace(message: object, *args: Any) -> None:
    """The official SDK's finest level: DEBUG here."""
    logger.debug(message, *args, stacklevel=2)


def log_warn(message: object, *args: Any) -> None:
    logger.warning(message, *args, stacklevel=2)


def log_error(message: object, *args: Any) -> None:
    logger.error(message, *args, stacklevel=2)


def _set(name: str, label: str, value: str | None) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"{label}: expected a non-empty string or None, got {value!r}")
    setattr(get_config(), name, value)


def AK(ak: str | None) -> None:
    """Set ``get_config().AK``, the API key (env ``QIANFAN_AK``); None clears it."""
    _set("AK", "QIANFAN_AK", ak)


def SK(sk: str | None) -> None:
    """Set ``get_config().SK``, the secret key (env ``QIANFAN_SK``); None clears it."""
    _set("SK", "QIANFAN_SK", sk)


def AccessToken(access_token: str | None) -> None:
    """Set ``get_config().ACCESS_TOKEN`` (env ``QIANFAN_ACCESS_TOKEN``); None clears it."""
    _set("ACCESS_TOKEN", "QIANFAN_ACCESS_TOKEN", access_token)


def AccessKey(access_key: str | None) -> None:
    """Set ``get_config().ACCESS_KEY``, the IAM access key (env ``QIANFAN_ACCESS_KEY``)."""
    _set("ACCESS_KEY", "QIANFAN_ACCESS_KEY", access_key)


def SecretKey(secret_key: str | None) -> None:
    """Set ``get_config().SECRET_KEY``, the IAM secret key (env ``QIANFAN_SECRET_KEY``)."""
    _set("SECRET_KEY", "QIANFAN_SECRET_KEY", secret_key)


def encoding() -> str:
    """The file encoding the SDK reads and writes files with."""
    return str(get_config().FILE_ENCODING)


class Env:
    """The official SDK's names of its environment variables (its ``qianfan.consts.Env``)."""

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


#: every default of :class:`Config`, read by name below (one home for each default)
_DEFAULTS = Config()


class DefaultValue:
    """The official SDK's names of its defaults (its ``qianfan.consts.DefaultValue``): the values
    are :class:`~qfnb._core.config.Config`'s and, for the settings qfnb has no use for,
    :data:`~qfnb._core.config.UNUSED_SETTINGS`."""

    AK = ""
    SK = ""
    AccessToken = ""
    BaseURL = _DEFAULTS.base_url
    ModelAPIPrefix = _DEFAULTS.model_api_prefix
    AuthTimeout = _DEFAULTS.auth_timeout
    DisableErnieBotSDK = UNUSED_SETTINGS["DISABLE_EB_SDK"]
    IAMSignExpirationSeconds = _DEFAULTS.iam_sign_expiration_sec
    ConsoleAPIBaseURL = _DEFAULTS.console_api_base_url
    IAMBaseURL = _DEFAULTS.iam_base_url
    AccessTokenRefreshMinInterval = _DEFAULTS.access_token_refresh_min_interval
    BearerTokenExpiredInterval = _DEFAULTS.bearer_token_expired_interval
    RetryCount = _DEFAULTS.llm_api_retry_count
    RetryTimeout = _DEFAULTS.llm_api_retry_timeout
    RetryBackoffFactor = _DEFAULTS.llm_api_retry_backoff_factor
    RetryJitter = _DEFAULTS.llm_api_retry_jitter
    RetryMaxWaitInterval = _DEFAULTS.llm_api_retry_max_wait_interval
    RetryErrCodes = _DEFAULTS.llm_api_retry_err_codes
    ConsoleRetryCount = _DEFAULTS.console_api_retry_count
    ConsoleRetryTimeout = _DEFAULTS.console_api_retry_timeout
    ConsoleRetryBackoffFactor = _DEFAULTS.console_api_retry_backoff_factor
    ConsoleRetryJitter = _DEFAULTS.console_api_retry_jitter
    ConsoleRetryMaxWaitInterval = _DEFAULTS.console_api_retry_max_wait_interval
    ConsoleRetryErrCodes = _DEFAULTS.console_api_retry_err_codes
    QpsLimit = _DEFAULTS.qps_limit
    RpmLimit = _DEFAULTS.rpm_limit
    TpmLimit = _DEFAULTS.tpm_limit
    DotEnvConfigFile = UNUSED_SETTINGS["DOT_ENV_CONFIG_FILE"]
    EnablePrivate = _DEFAULTS.enable_private
    AccessCode = ""
    TruncatedContinuePrompt = "继续"
    ImportStatusPollingInterval = _DEFAULTS.import_status_polling_interval
    ExportStatusPollingInterval = _DEFAULTS.export_status_polling_interval
    ReleaseStatusPollingInterval = _DEFAULTS.release_status_polling_interval
    ETLStatusPollingInterval = UNUSED_SETTINGS["ETL_STATUS_POLLING_INTERVAL"]
    TrainStatusPollingInterval = _DEFAULTS.train_status_polling_interval
    ModelPublishStatusPollingInterval = _DEFAULTS.model_publish_status_polling_interval
    DeployStatusPollingInterval = _DEFAULTS.deploy_status_polling_interval
    EvaluationOnlinePollingInterval = _DEFAULTS.evaluation_online_polling_interval
    BatchRunStatusPollingInterval = UNUSED_SETTINGS["BATCH_RUN_STATUS_POLLING_INTERVAL"]
    DefaultFinetuneTrainType = UNUSED_SETTINGS["DEFAULT_FINE_TUNE_TRAIN_TYPE"]
    ExportFileSizeLimit = UNUSED_SETTINGS["EXPORT_FILE_SIZE_LIMIT"]
    GetEntityContentFailedRetryTimes = UNUSED_SETTINGS["GET_ENTITY_CONTENT_FAILED_RETRY_TIMES"]
    BosHostRegion = UNUSED_SETTINGS["BOS_HOST_REGION"]
    SSLVerificationEnabled = _DEFAULTS.ssl_verification_enabled
    Proxy = _DEFAULTS.proxy
    FileEncoding = UNUSED_SETTINGS["FILE_ENCODING"]
    CacheDir = str(Path.home() / ".qianfan_cache")
    DisableCache = UNUSED_SETTINGS["DISABLE_CACHE"]
    ChatV2ApiRoute = _DEFAULTS.chat_v2_api_route


# ---- the official ``qianfan.utils.utils`` helpers

_ID_ALPHABET = string.ascii_letters + string.digits


def generate_letter_num_random_id(len: int = 10) -> str:
    """A random id of ``len`` letters and digits (from :mod:`secrets`)."""
    if len < 0:
        raise ValueError(f"len: must be >= 0, got {len}")
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(len))


def check_package_installed(package_name: str) -> bool:
    """True when ``package_name`` can be imported (found, not imported)."""
    try:
        return importlib.util.find_spec(package_name) is not None
    except (ImportError, ValueError):  # a dotted name whose parent is missing
        return False


def assert_package_installed(package_name: str) -> None:
    """Raise ``ImportError`` naming the package and its install command when it is missing."""
    if not check_package_installed(package_name):
        raise ImportError(f"{package_name} is not installed: pip install {package_name}")


def camel_to_snake(name: str) -> str:
    """``DatasetId`` -> ``dataset_id``."""
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)).lower()


def snake_to_camel(name: str) -> str:
    """``dataset_id`` -> ``DatasetId``."""
    return "".join(part.capitalize() for part in name.split("_"))


def first_lower_case(name: str) -> str:
    """``DatasetId`` -> ``datasetId``."""
    return name[:1].lower() + name[1:]
