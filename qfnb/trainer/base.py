"""``qfnb.trainer.base`` (official import path): the extension API.

Write an action as with the official SDK — subclass :class:`BaseAction`, implement a sync
``exec(self, input=None, **kwargs)`` — and use it as a step of a :class:`Pipeline` (a
pipeline is itself an action, so pipelines nest). qfnb runs a sync ``exec`` on a worker
thread, so it never blocks qfnb's event loop.
"""

from ._action import BaseAction, Executable, ExecuteSerializable, Serializable
from .pipeline import Pipeline, Trainer

__all__ = ["BaseAction", "Executable", "ExecuteSerializable", "Pipeline", "Serializable", "Trainer"]
