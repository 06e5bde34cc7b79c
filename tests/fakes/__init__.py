"""Test doubles of the Qianfan cloud protocol (see :mod:`tests.fakes.cloud`)."""

from .cloud import Captured, FakeQianfan, Fault, Reply, serve

__all__ = ["Captured", "FakeQianfan", "Fault", "Reply", "serve"]
