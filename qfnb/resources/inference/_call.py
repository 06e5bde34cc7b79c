"""How a resource's typed ``do``/``ado`` hand their arguments to the one shared core."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

__all__ = ["blocking_doc", "call_params"]


def call_params(scope: Mapping[str, Any], *, keep_none: bool = False) -> dict[str, Any]:
    """The arguments of a ``do``/``ado`` call, from its ``locals()`` taken first thing: the
    named ones (those not None unless ``keep_none``: ``do`` forwards all to ``ado``), then
    its ``**kwargs`` (fields the platform adds)."""
    named = {k: v for k, v in scope.items()
             if k not in ("self", "kwargs", "__class__") and (keep_none or v is not None)}
    return {**named, **scope.get("kwargs", {})}


def blocking_doc(async_doc: str | None) -> str:
    """``do``'s docstring from ``ado``'s: shift-Tab in a notebook shows every parameter."""
    return ("Blocking :meth:`ado`: runs on qfnb's background loop (safe inside Jupyter); a stream "
            "is a sync iterator.\n\n" + inspect.cleandoc(async_doc or ""))
