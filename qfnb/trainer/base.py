"""``qfnb.trainer.base`` (official import path)."""

from .actions import BaseAction
from .pipeline import Pipeline, Trainer

__all__ = ["BaseAction", "Pipeline", "Trainer"]
