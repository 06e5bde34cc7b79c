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

#: the public names, by the module each is read from on first use
_LAZY_FROM = {
    "qfnb._core.config": ("Config", "resolve_config"),
    "qfnb._core.http.client": ("AsyncQianfanClient", "get_client"),
    "qfnb._core.http.response": ("QfResponse",),
    "qfnb._core.http.retry": ("RetryPolicy",),
    "qfnb._core.transport": ("Transport", "Request", "Reply", "StreamReply"),
    "qfnb._core.transport.aiohttp": ("AiohttpTransport",),
    "qfnb._core.transport.httpx": ("HttpxTransport",),
    "qfnb._core.transport.asgi": ("ASGITransport",),
}
_LAZY = {name: module for module, names in _LAZY_FROM.items() for name in names}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'qfnb._core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    # not globals()[...]: once imported, the submodule qfnb._core.globals shadows that builtin here
    setattr(sys.modules[__name__], name, value)
    return value
