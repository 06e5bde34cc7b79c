"""``qfnb.model``: published models (``Model``), deployed services (``Service``) and their enums.
May import ``qfnb.dataset``, ``qfnb.resources``, ``qfnb._core`` and ``qfnb.protocol``; never
``evaluation``, ``trainer``, ``agents``, ``notebook`` or ``qfnb.local``."""

from .configs import DeployConfig
from .consts import ServiceStatus, ServiceType
from .jobs import PlatformJobError
from .model import Model
from .service import Service

__all__ = ["DeployConfig", "Model", "PlatformJobError", "Service", "ServiceStatus", "ServiceType"]
