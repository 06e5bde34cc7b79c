"""Typed bases for the ipywidgets containers qfnb subclasses.

ipywidgets ships no type information; at run time these are its own ``HBox`` and ``VBox``, and
mypy sees the members qfnb's widgets use of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:

    class Box:
        """``ipywidgets.Box``: a container of widgets."""

        children: tuple[Any, ...]

        def __init__(self, children: Sequence[Any] = (), **kwargs: Any) -> None: ...
        def add_class(self, name: str, /) -> Self: ...
        def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None: ...

    class HBox(Box):
        """``ipywidgets.HBox``."""

    class VBox(Box):
        """``ipywidgets.VBox``."""

else:
    from ipywidgets import HBox, VBox

__all__ = ["HBox", "VBox"]
