"""The official SDK's ``qianfan.client``: ``qfnb.Qianfan``, the OpenAI-style v2 client.

A mirror module: the client is defined in :mod:`qfnb.resources.v2_client`.
"""

from qfnb.resources.v2_client import Chat, Qianfan, V2Route

__all__ = ["Chat", "Qianfan", "V2Route"]
