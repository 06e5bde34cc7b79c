"""Typed bases for the ipywidgets containers qfnb subclasses, and the one HTML widget it uses.

ipywidgets ships no type information; at run time these are its own ``HBox`` and ``VBox``, and
mypy sees the members qfnb's widgets use of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

from qfnb.resources.safe_html import clean

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

    class SafeHTML:
        """``ipywidgets.HTML`` whose value is always :func:`qfnb.resources.safe_html.clean`'s."""

        value: str
        layout: Any

        def __init__(self, value: str = "", **kwargs: Any) -> None: ...
        def add_class(self, name: str, /) -> Self: ...

else:
    from ipywidgets import HTML, HBox, VBox
    from traitlets import validate

    class SafeHTML(HTML):  # type: ignore[misc]
        """``ipywidgets.HTML`` whose value is always :func:`qfnb.resources.safe_html.clean`'s: the
        front end sets it as ``innerHTML``, live and from the state saved in the notebook."""

        @validate("value")
        def _clean(self, proposal: Any) -> str:
            return clean(str(proposal["value"]))


__all__ = ["HBox", "SafeHTML", "VBox"]
