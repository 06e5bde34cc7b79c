"""``from qfnb.model.consts import ServiceType`` (official SDK import path)."""

from qfnb.trainer.consts import ServiceStatus, ServiceType

__all__ = ["ServiceStatus", "ServiceType"]
