"""The official SDK's ``qianfan.utils``: its logging helpers (on the ``qfnb`` logger)."""

from qfnb.utils.logging import disable_log, enable_log, log_debug, log_error, log_info, log_warn, logger

__all__ = ["disable_log", "enable_log", "log_debug", "log_error", "log_info", "log_warn", "logger"]
