"""The official SDK's ``qianfan.utils``: its logging helpers (on the ``qfnb`` logger).
An official-SDK mirror: may import any layer; no layer imports it
(``qfnb.utils`` is a fence around the package, never a floor)."""

from qfnb.utils.logging import disable_log, enable_log, log_debug, log_error, log_info, log_warn, logger

__all__ = ["disable_log", "enable_log", "log_debug", "log_error", "log_info", "log_warn", "logger"]
