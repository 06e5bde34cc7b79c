"""The official SDK's ``qianfan.utils.logging`` names, on qfnb's ``qfnb`` logger
(defined in :mod:`qfnb._core.globals`)."""

from qfnb._core.globals import (
    disable_log,
    enable_log,
    log_debug,
    log_error,
    log_info,
    log_trace,
    log_warn,
    logger,
)

__all__ = ["disable_log", "enable_log", "log_debug", "log_error", "log_info", "log_trace", "log_warn",
           "logger"]
