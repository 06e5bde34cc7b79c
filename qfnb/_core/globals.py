"""The official SDK's process-wide setters: ``qfnb.AK("...")``, ``qfnb.get_config()``, logs.

The setters write the ``QIANFAN_*`` environment variables that :meth:`Config.from_env` reads
on every client construction, so a key set here is used by every client created afterwards
(as in the official SDK, where they set a global config object).
"""

from __future__ import annotations

import logging
import os

from qfnb._core.config import Config

__all__ = ["AK", "SK", "AccessKey", "AccessToken", "SecretKey", "disable_log", "enable_log",
           "get_config"]


def _set(var: str, value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{var}: expected a non-empty string")
    os.environ[var] = value


def AK(ak: str) -> None:
    """Set the API key (``QIANFAN_AK``) used by clients created afterwards."""
    _set("QIANFAN_AK", ak)


def SK(sk: str) -> None:
    """Set the secret key (``QIANFAN_SK``) used by clients created afterwards."""
    _set("QIANFAN_SK", sk)


def AccessToken(access_token: str) -> None:
    """Set a fixed OAuth access token (``QIANFAN_ACCESS_TOKEN``)."""
    _set("QIANFAN_ACCESS_TOKEN", access_token)


def AccessKey(access_key: str) -> None:
    """Set the IAM access key (``QIANFAN_ACCESS_KEY``) for console and v2 calls."""
    _set("QIANFAN_ACCESS_KEY", access_key)


def SecretKey(secret_key: str) -> None:
    """Set the IAM secret key (``QIANFAN_SECRET_KEY``)."""
    _set("QIANFAN_SECRET_KEY", secret_key)


def get_config() -> Config:
    """The configuration read from the environment now (secrets masked in its repr)."""
    return Config.from_env()


def enable_log(log_level: int | str = logging.INFO) -> None:
    """Set the level of the ``qfnb`` logger (and give it a stderr handler if it has none)."""
    log = logging.getLogger("qfnb")
    log.setLevel(log_level)
    if not log.handlers and not logging.getLogger().handlers:
        log.addHandler(logging.StreamHandler())


def disable_log() -> None:
    """Silence qfnb's logging below CRITICAL."""
    logging.getLogger("qfnb").setLevel(logging.CRITICAL)
