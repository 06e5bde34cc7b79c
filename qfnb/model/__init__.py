"""``qfnb.model``: published models and deployed services."""

from .configs import DeployConfig
from .consts import ServiceStatus, ServiceType
from .jobs import PlatformJobError
from .model import Model
from .service import Service

__all__ = ["DeployConfig", "Model", "PlatformJobError", "Service", "ServiceStatus", "ServiceType"]
