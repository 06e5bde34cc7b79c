"""The official ``qianfan.common.hub.hub`` path: re-exports :mod:`qfnb.resources.prompts.hub` (and the
names the official module holds: ``Prompt`` and the errors it raises)."""

from qfnb._core.errors import InvalidArgumentError, RequestError, ValidationError
from qfnb.resources.prompts.hub import HUB_TYPES, HubSerializable, dumps, encoding, load, loads, push, save
from qfnb.resources.prompts.template import Prompt

__all__ = ["HUB_TYPES", "HubSerializable", "InvalidArgumentError", "Prompt", "RequestError", "ValidationError",
           "dumps", "encoding", "load", "loads", "push", "save"]
