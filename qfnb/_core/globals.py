"""The official SDK's logging switches: ``qfnb.enable_log()`` and ``qfnb.disable_log()``.

(Its credential setters, ``qfnb.AK("...")`` & co., live with the settings object in
:mod:`qfnb.config`.)
"""

from __future__ import annotations

import logging

__all__ = ["disable_log", "enable_log"]


def enable_log(log_level: int | str = logging.INFO) -> None:
    """Set the level of the ``qfnb`` logger (and give it a stderr handler if it has none)."""
    log = logging.getLogger("qfnb")
    log.setLevel(log_level)
    if not log.handlers and not logging.getLogger().handlers:
        log.addHandler(logging.StreamHandler())


def disable_log() -> None:
    """Silence qfnb's logging below CRITICAL."""
    logging.getLogger("qfnb").setLevel(logging.CRITICAL)
