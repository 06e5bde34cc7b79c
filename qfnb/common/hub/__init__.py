"""The official ``qianfan.common.hub``: ``from qfnb.common.hub import hub`` then ``hub.save(prompt)`` /
``hub.load(...)``, as with the official SDK (the functions are here too: ``qfnb.common.hub.load``).
An official-SDK mirror: may import any layer; no layer imports it."""

from qfnb.common.hub import hub
from qfnb.common.hub.hub import HUB_TYPES, HubSerializable, dumps, load, loads, push, save

__all__ = ["HUB_TYPES", "HubSerializable", "dumps", "hub", "load", "loads", "push", "save"]
