"""The official SDK's logging switches, ``qfnb.enable_log()`` and ``qfnb.disable_log()``, and its
``log_*`` helpers on the ``qfnb`` logger (:mod:`qfnb.utils.logging` re-exports them).

(Its credential setters, ``qfnb.AK("...")`` & co., live with the settings object in
:mod:`qfnb.config`.)
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["disable_log", "enable_log", "log_debug", "log_error", "log_info", "log_trace", "log_warn", "logger"]


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
