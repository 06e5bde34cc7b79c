"""Test doubles of the Qianfan cloud protocol (see :mod:`tests.fakes.cloud`; a 2026 account with only a
v2 API key: :mod:`tests.fakes.cloud_v2`)."""

from .cloud import Captured, FakeQianfan, Fault, Reply, serve
from .cloud_v2 import FakeQianfanV2

__all__ = ["Captured", "FakeQianfan", "FakeQianfanV2", "Fault", "Reply", "serve"]
