"""How the settings of :class:`qfnb._core.config.Config` are spelled: the environment variables
(``QIANFAN_*``, ``QFNB_*``) with their parsers, and the keyword names a client takes (the official
SDK's spellings among them), normalized to the field names."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dotenv

__all__ = ["DOT_ENV_VAR", "ENV", "FIELD_NAMES", "dotenv_values", "environment", "normalize", "read_env"]


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


#: the fields each parser reads, by name; a field's variable is ``QIANFAN_`` and its name in upper
#: case (``QFNB_`` for qfnb's own settings, :data:`_QFNB`)
_FIELDS_BY_PARSER: tuple[tuple[Any, str], ...] = (
    (str, "ak sk access_token access_key secret_key bearer_token app_id access_code base_url model_api_prefix "
          "console_api_base_url chat_v2_api_route iam_base_url bos_endpoint bos_upload_path proxy iam_host"),
    (int, "iam_sign_expiration_sec bearer_token_expired_interval tpm_limit llm_api_retry_count "
          "console_api_retry_count max_connections"),
    (float, "auth_timeout access_token_refresh_min_interval qps_limit rpm_limit llm_api_retry_timeout "
            "llm_api_retry_backoff_factor llm_api_retry_jitter llm_api_retry_max_wait_interval "
            "console_api_retry_timeout console_api_retry_backoff_factor console_api_retry_jitter "
            "console_api_retry_max_wait_interval train_status_polling_interval "
            "model_publish_status_polling_interval deploy_status_polling_interval "
            "evaluation_online_polling_interval import_status_polling_interval export_status_polling_interval "
            "release_status_polling_interval"),
    (_codes, "llm_api_retry_err_codes console_api_retry_err_codes"),
    (_bool, "ssl_verification_enabled no_auth use_custom_endpoint enable_private"),
    (_cache_mode, "cache"),
)
_QFNB = frozenset({"bos_endpoint", "bos_upload_path", "max_connections", "cache"})
#: field name -> (environment variable, parser)
ENV: dict[str, tuple[str, Any]] = {
    name: (f"{'QFNB' if name in _QFNB else 'QIANFAN'}_{name.upper()}", parse)
    for parse, names in _FIELDS_BY_PARSER for name in names.split()
}

# official SDK kwarg spellings -> our field names
_ALIASES = {
    "query_per_second": "qps_limit", "ssl": "ssl_verification_enabled",
    "request_per_minute": "rpm_limit", "token_per_minute": "tpm_limit",
    # the v2 API key (``bce-v3/...``): the name 2026 accounts and OpenAI-style clients use
    "api_key": "bearer_token",
}
#: the variable 2026 accounts set for their v2 API key, read where ``QIANFAN_BEARER_TOKEN`` is not set
API_KEY_VAR = "QIANFAN_API_KEY"


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
    if "bearer_token" not in values and source.get(API_KEY_VAR):
        values["bearer_token"] = source[API_KEY_VAR]
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


# ---- the official SDK's DotEnv file: ``.env`` in the working directory (or ``QIANFAN_DOT_ENV_CONFIG_FILE``)

logger = logging.getLogger("qfnb")
#: the variable naming the DotEnv file to read instead of ``.env`` in the working directory
DOT_ENV_VAR = "QIANFAN_DOT_ENV_CONFIG_FILE"


def dotenv_values(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``KEY=VALUE`` lines of a DotEnv file (python-dotenv's syntax); a missing file, or a
    folder (a virtualenv named ``.env``), is empty."""
    if not Path(path).is_file():
        return {}
    try:
        values = dotenv.dotenv_values(path)
    except OSError as exc:
        logger.warning("the DotEnv file %s could not be read: %s", path, exc.strerror)
        return {}
    return {name: value for name, value in values.items() if value is not None}


def environment() -> Mapping[str, str]:
    """The variables settings are read from: the DotEnv file's, under the process environment's
    (a variable set in both reads the environment's, as the official SDK's settings do)."""
    from_file = dotenv_values(os.environ.get(DOT_ENV_VAR) or ".env")
    return {**from_file, **os.environ} if from_file else os.environ
