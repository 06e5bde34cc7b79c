"""Client machinery: config, auth, transport, retries, rate limits, errors, the sync shell, in rooms
(runtime → http → record → globals → config → backend → transport → errors, each importing only
those after it). May import ``qfnb.protocol`` only; ``resources`` and every layer above import it.

Submodules are imported on use (``import qfnb`` stays fast); see ``docs/architecture.md``
Contract 2.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

_LAZY = {
    "Config": "qfnb._core.config",
    "resolve_config": "qfnb._core.config",
    "AsyncQianfanClient": "qfnb._core.http.client",
    "get_client": "qfnb._core.http.client",
    "QfResponse": "qfnb._core.http.response",
    "RetryPolicy": "qfnb._core.http.retry",
    "Transport": "qfnb._core.transport",
    "Request": "qfnb._core.transport",
    "Reply": "qfnb._core.transport",
    "StreamReply": "qfnb._core.transport",
    "AiohttpTransport": "qfnb._core.transport.aiohttp",
    "HttpxTransport": "qfnb._core.transport.httpx",
    "ASGITransport": "qfnb._core.transport.asgi",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'qfnb._core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    # not globals()[...]: once imported, the submodule qfnb._core.globals shadows that builtin here
    setattr(sys.modules[__name__], name, value)
    return value
