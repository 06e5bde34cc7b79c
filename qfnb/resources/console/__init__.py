"""Console (management) APIs: ``FineTune``, ``Model``, ``Service``, ``Data``, ``IAM``, ``Prompt``,
``Charge``, ``Memory``; bce-auth-v1 signed, written from the ``builders``.
Part of ``qfnb.resources``: may import ``qfnb._core`` and ``qfnb.protocol`` only."""

from .charge import Charge, Memory
from .data import Data
from .finetune import FineTune
from .iam import IAM
from .model import Model
from .prompt import Prompt
from .service import Service

__all__ = ["IAM", "Charge", "Data", "FineTune", "Memory", "Model", "Prompt", "Service"]
