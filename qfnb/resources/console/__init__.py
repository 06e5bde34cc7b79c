"""Console (management) APIs: ``FineTune``, ``Model``, ``Service``, ``Data``; bce-auth-v1 signed."""

from .data import Data
from .finetune import FineTune
from .model import Model
from .service import Service

__all__ = ["Data", "FineTune", "Model", "Service"]
