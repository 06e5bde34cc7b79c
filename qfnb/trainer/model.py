"""``qfnb.trainer.model`` (official import path): ``Model``, ``Service``, ``model_deploy``."""

from __future__ import annotations

from qfnb.model.model import Model
from qfnb.model.service import Service

from .configs import DeployConfig


def model_deploy(model: Model, deploy_config: DeployConfig) -> Service:
    """Deploy ``model`` and wait until the service is serving."""
    return model.deploy(deploy_config)


__all__ = ["Model", "Service", "model_deploy"]
