"""Service enumerations; ``from qfnb.model.consts import ServiceType`` (official SDK import path).

Defined once in :mod:`qfnb.protocol.console` (``qfnb.trainer.consts`` re-exports them too).
"""

from __future__ import annotations

from qfnb.protocol.console.enums import ModelServiceStatus as ServiceStatus
from qfnb.protocol.console.enums import ModelServiceType as ServiceType

__all__ = ["ServiceStatus", "ServiceType"]
