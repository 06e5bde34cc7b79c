"""Console (management) APIs: ``FineTune``, ``Model``, ``Service``, ``Data``, ``IAM``; bce-auth-v1 signed."""

from .data import Data
from .finetune import FineTune
from .iam import IAM
from .model import Model
from .service import Service

__all__ = ["IAM", "Data", "FineTune", "Model", "Service"]
