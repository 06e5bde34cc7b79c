"""``qfnb.trainer.model`` (official import path): ``Model``, ``Service``, ``model_deploy``."""

from __future__ import annotations

from qfnb._core.runtime.progress import ProgressArg
from qfnb.model.model import Model
from qfnb.model.service import Service

from ._action import ExecuteSerializable
from .configs import DeployConfig

# as the official classes: a Model and a Service are executable and serializable
ExecuteSerializable.register(Model)
ExecuteSerializable.register(Service)


def model_deploy(model: Model, deploy_config: DeployConfig, progress: ProgressArg = None) -> Service:
    """Deploy ``model`` and wait until the service is serving (``progress``: see :meth:`Model.deploy`)."""
    return model.deploy(deploy_config, progress=progress)


__all__ = ["Model", "Service", "model_deploy"]
