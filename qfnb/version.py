"""The official SDK's ``qianfan.version``: ``VERSION`` is qfnb's version."""

from qfnb.protocol.version import __version__

__all__ = ["VERSION"]

VERSION = __version__
