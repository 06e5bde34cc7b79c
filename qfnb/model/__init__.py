"""``qfnb.model``: published models and deployed services."""

from qfnb.trainer.configs import DeployConfig
from qfnb.trainer.consts import ServiceStatus, ServiceType

from .model import Model, PlatformJobError, Service

__all__ = ["DeployConfig", "Model", "PlatformJobError", "Service", "ServiceStatus", "ServiceType"]
