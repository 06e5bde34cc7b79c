"""The official SDK's ``qianfan.utils.logging`` names, on qfnb's ``qfnb`` logger."""

from __future__ import annotations

import logging
from typing import Any

from qfnb._core.globals import disable_log, enable_log

__all__ = ["disable_log", "enable_log", "log_debug", "log_error", "log_info", "log_trace", "log_warn",
           "logger"]

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
