"""How the settings of :class:`qfnb._core.config.Config` are spelled: the environment variables
(``QIANFAN_*``, ``QFNB_*``) with their parsers, and the keyword names a client takes (the official
SDK's spellings among them), normalized to the field names."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["ENV", "FIELD_NAMES", "normalize", "read_env"]


_TRUE = ("1", "true", "yes", "on")


def _bool(text: str) -> bool:
    return text.strip().lower() in _TRUE


def _cache_mode(value: object) -> str:
    """``off`` / ``on`` / ``refresh`` from a bool or its usual spellings (``QFNB_CACHE=1``)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    text = str(value).strip().lower()
    if text in _TRUE:
        return "on"
    if text in ("0", "false", "no", "off", ""):
        return "off"
    if text in ("refresh", "fresh"):
        return "refresh"
    raise ValueError(f"cache must be on, off or refresh, got {value!r}")


def _codes(text: str) -> frozenset[int]:
    try:
        return frozenset(int(c) for c in json.loads(text))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"retry error codes must be a JSON list of integers, got {text!r}") from exc


#: field name -> (environment variable, parser)
ENV: dict[str, tuple[str, Any]] = {
    "ak": ("QIANFAN_AK", str),
    "sk": ("QIANFAN_SK", str),
    "access_token": ("QIANFAN_ACCESS_TOKEN", str),
    "access_key": ("QIANFAN_ACCESS_KEY", str),
    "secret_key": ("QIANFAN_SECRET_KEY", str),
    "bearer_token": ("QIANFAN_BEARER_TOKEN", str),
    "app_id": ("QIANFAN_APP_ID", str),
    "access_code": ("QIANFAN_ACCESS_CODE", str),
    "base_url": ("QIANFAN_BASE_URL", str),
    "model_api_prefix": ("QIANFAN_MODEL_API_PREFIX", str),
    "console_api_base_url": ("QIANFAN_CONSOLE_API_BASE_URL", str),
    "chat_v2_api_route": ("QIANFAN_CHAT_V2_API_ROUTE", str),
    "iam_base_url": ("QIANFAN_IAM_BASE_URL", str),
    "bos_endpoint": ("QFNB_BOS_ENDPOINT", str),
    "iam_sign_expiration_sec": ("QIANFAN_IAM_SIGN_EXPIRATION_SEC", int),
    "auth_timeout": ("QIANFAN_AUTH_TIMEOUT", float),
    "access_token_refresh_min_interval": ("QIANFAN_ACCESS_TOKEN_REFRESH_MIN_INTERVAL", float),
    "bearer_token_expired_interval": ("QIANFAN_BEARER_TOKEN_EXPIRED_INTERVAL", int),
    "qps_limit": ("QIANFAN_QPS_LIMIT", float),
    "rpm_limit": ("QIANFAN_RPM_LIMIT", float),
    "tpm_limit": ("QIANFAN_TPM_LIMIT", int),
    "llm_api_retry_count": ("QIANFAN_LLM_API_RETRY_COUNT", int),
    "llm_api_retry_timeout": ("QIANFAN_LLM_API_RETRY_TIMEOUT", float),
    "llm_api_retry_backoff_factor": ("QIANFAN_LLM_API_RETRY_BACKOFF_FACTOR", float),
    "llm_api_retry_jitter": ("QIANFAN_LLM_API_RETRY_JITTER", float),
    "llm_api_retry_max_wait_interval": ("QIANFAN_LLM_API_RETRY_MAX_WAIT_INTERVAL", float),
    "llm_api_retry_err_codes": ("QIANFAN_LLM_API_RETRY_ERR_CODES", _codes),
    "console_api_retry_count": ("QIANFAN_CONSOLE_API_RETRY_COUNT", int),
    "console_api_retry_timeout": ("QIANFAN_CONSOLE_API_RETRY_TIMEOUT", float),
    "console_api_retry_backoff_factor": ("QIANFAN_CONSOLE_API_RETRY_BACKOFF_FACTOR", float),
    "console_api_retry_jitter": ("QIANFAN_CONSOLE_API_RETRY_JITTER", float),
    "console_api_retry_max_wait_interval": ("QIANFAN_CONSOLE_API_RETRY_MAX_WAIT_INTERVAL", float),
    "console_api_retry_err_codes": ("QIANFAN_CONSOLE_API_RETRY_ERR_CODES", _codes),
    "proxy": ("QIANFAN_PROXY", str),
    "ssl_verification_enabled": ("QIANFAN_SSL_VERIFICATION_ENABLED", _bool),
    "no_auth": ("QIANFAN_NO_AUTH", _bool),
    "use_custom_endpoint": ("QIANFAN_USE_CUSTOM_ENDPOINT", _bool),
    "enable_private": ("QIANFAN_ENABLE_PRIVATE", _bool),
    "iam_host": ("QIANFAN_IAM_HOST", str),
    "train_status_polling_interval": ("QIANFAN_TRAIN_STATUS_POLLING_INTERVAL", float),
    "model_publish_status_polling_interval": ("QIANFAN_MODEL_PUBLISH_STATUS_POLLING_INTERVAL", float),
    "deploy_status_polling_interval": ("QIANFAN_DEPLOY_STATUS_POLLING_INTERVAL", float),
    "evaluation_online_polling_interval": ("QIANFAN_EVALUATION_ONLINE_POLLING_INTERVAL", float),
    "import_status_polling_interval": ("QIANFAN_IMPORT_STATUS_POLLING_INTERVAL", float),
    "export_status_polling_interval": ("QIANFAN_EXPORT_STATUS_POLLING_INTERVAL", float),
    "release_status_polling_interval": ("QIANFAN_RELEASE_STATUS_POLLING_INTERVAL", float),
    "max_connections": ("QFNB_MAX_CONNECTIONS", int),
    "cache": ("QFNB_CACHE", _cache_mode),
}

# official SDK kwarg spellings -> our field names
_ALIASES = {
    "query_per_second": "qps_limit", "ssl": "ssl_verification_enabled",
    "request_per_minute": "rpm_limit", "token_per_minute": "tpm_limit",
}


#: every field name of :class:`~qfnb._core.config.Config`
FIELD_NAMES = frozenset(ENV) | {"default_models", "embedded", "transport"}
# accepted for the official SDK's sake, no effect here: ``key`` names the official rate limiter's
# bucket (qfnb's limiter is per configuration already)
_IGNORED = frozenset({"key"})


def read_env(source: Mapping[str, str]) -> dict[str, Any]:
    """The fields ``source``'s variables set (an empty variable sets nothing), parsed."""
    values: dict[str, Any] = {}
    for name, (var, parse) in ENV.items():
        raw = source.get(var)
        if raw is not None and raw != "":
            try:
                values[name] = parse(raw)
            except ValueError as exc:
                raise ValueError(f"environment variable {var}: {exc}") from None
    return values


def normalize(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword settings by field name (aliases resolved, ``None`` left out); an unknown one raises ``TypeError``."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        name = _ALIASES.get(key, key).lower()
        if name in _IGNORED:
            continue
        if name not in FIELD_NAMES:
            raise TypeError(f"unknown configuration option {key!r}")
        if value is None:
            continue
        if name.endswith("_err_codes"):
            value = frozenset(int(v) for v in value)
        elif name == "cache":
            value = _cache_mode(value)
        out[name] = value
    return out
